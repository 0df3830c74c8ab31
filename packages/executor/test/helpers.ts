import { readFileSync } from 'node:fs'
import wabtInit from 'wabt'
import type { RuntimeDescriptor, RuntimeKind } from '../src/index.ts'

const wabt = await wabtInit()

/** Compile a `.wat` fixture (or text) to a wasm binary with the npm `wabt` package, offline. */
export function wat(name: string, replace: Record<string, string> = {}): Uint8Array {
  let text = readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
  for (const [k, v] of Object.entries(replace)) text = text.replaceAll(k, v)
  const mod = wabt.parseWat(name, text)
  try {
    return mod.toBinary({}).buffer
  } finally {
    mod.destroy()
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

export function runtime(
  kind: RuntimeKind,
  over: Partial<Omit<RuntimeDescriptor, 'kind'>> = {},
): RuntimeDescriptor {
  return {
    kind,
    entry: kind === 'wasi' ? 'main.wasm' : 'main.js',
    memoryLimitBytes: 16 * 1024 * 1024,
    timeLimitMs: 1000,
    ...over,
  }
}

/**
 * Active handles a sandbox could leak: worker threads and their stdio show up as
 * MessagePort, open files as FileHandle. (Timers are checked in a plain Node process, see
 * test/scripts/handles-after-runs.ts: the test runner keeps its own.)
 */
export function leakable(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => /Worker|MessagePort|FileHandle/.test(r))
    .sort()
}
