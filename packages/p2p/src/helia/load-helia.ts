/**
 * Loads helia's `Helia` class without helia's package entry. That entry (`createHelia`) imports
 * `@helia/libp2p`, whose index builds libp2p's whole default set-up (WebRTC, AutoTLS, HTTP,
 * WebSockets, UPnP): ~1.2 s of CPU at every process start for modules we never use. The class
 * file itself is small; helia is pinned to an exact version, so its file layout is fixed.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Helia } from '@helia/interface'
import type { HeliaInit } from 'helia'

export type HeliaConstructor = new (init: HeliaInit & { name: string; version: string }) => Helia

export interface LoadedHelia {
  Helia: HeliaConstructor
  /** helia's own name and version, as `createHeliaLight` passes them (identify agent). */
  name: string
  version: string
}

let loading: Promise<LoadedHelia> | undefined

/** The `Helia` class and helia's name/version, loaded once per process. */
export function loadHelia(): Promise<LoadedHelia> {
  loading ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('helia')
    const file = (name: string) => pathToFileURL(join(dirname(entry), name)).href
    const [classModule, versionModule] = await Promise.all([
      import(file('helia.js')),
      import(file('version.js')),
    ])
    return {
      Helia: classModule.Helia as HeliaConstructor,
      name: versionModule.name as string,
      version: versionModule.version as string,
    }
  })()
  return loading
}
