import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { createDigicapNode, heliaCapsuleStore } from '../src/index.ts'

const entry = new URL('../src/index.ts', import.meta.url).href

// A fresh process (vitest's module graph would hide what a real start loads) that records every
// module it resolves while importing the package and starting and stopping a node.
const probe = `
import { registerHooks } from 'node:module'
const loaded = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r } })
const { createDigicapNode } = await import(${JSON.stringify(entry)})
const node = await createDigicapNode({ dht: true })
await node.stop()
console.log(JSON.stringify(loaded))
`

describe('start-up', () => {
  it('loads none of libp2p default set-up (WebRTC, AutoTLS, WebSockets, UPnP, HTTP) nor @helia/libp2p', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--no-warnings', '--input-type=module', '-e', probe],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 60_000 },
    )
    const loaded: string[] = JSON.parse(stdout.trim().split('\n').at(-1) as string)
    // the probe really saw the networking stack load
    expect(loaded.some((url) => url.includes('/node_modules/libp2p/'))).toBe(true)
    expect(loaded.some((url) => url.includes('/node_modules/@libp2p/kad-dht/'))).toBe(true)
    const unused = loaded.filter((url) =>
      /\/node_modules\/(@helia\/libp2p|@helia\/http|@libp2p\/(webrtc|websockets|upnp-nat|http|circuit-relay-v2|autonat|mdns)|@ipshipyard\/libp2p-auto-tls)\//.test(
        url,
      ),
    )
    expect(unused).toEqual([])
  }, 90_000)

  // ADR 0042: a process that only fetches (a one-shot `executor-node run`) imports the light
  // entry and starts its node without gossipsub; its fetch reads through the exporter.
  it('light entry, pubsub off: a real fetch to an on-disk node loads no gossipsub, kad-dht, importer nor @helia/unixfs', async () => {
    const holder = await createDigicapNode()
    const dir = await mkdtemp(join(tmpdir(), 'p2p-light-'))
    try {
      const bytes = randomBytes(3 * 1_048_576 + 5) // a balanced DAG of four leaves
      const cid = await heliaCapsuleStore(holder.helia).put(bytes)
      const light = new URL('../src/light.ts', import.meta.url).href
      const fetcher = `
import { registerHooks } from 'node:module'
import { createHash } from 'node:crypto'
const loaded = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r } })
const { createDigicapNode, heliaCapsuleStore } = await import(${JSON.stringify(light)})
const node = await createDigicapNode({ pubsub: false, dataDir: ${JSON.stringify(dir)}, bootstrap: [${JSON.stringify(holder.multiaddrs()[0])}] })
const hash = createHash('sha256')
let size = 0
for await (const chunk of heliaCapsuleStore(node.helia).get(${JSON.stringify(cid)})) { hash.update(chunk); size += chunk.byteLength }
await node.stop()
console.log(JSON.stringify({ size, sha256: hash.digest('hex'), loaded }))
`
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--no-warnings', '--input-type=module', '-e', fetcher],
        { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 90_000 },
      )
      const got = JSON.parse(stdout.trim().split('\n').at(-1) as string)
      expect(got.size).toBe(bytes.length)
      expect(got.sha256).toBe(createHash('sha256').update(bytes).digest('hex'))
      const loaded: string[] = got.loaded
      // the probe really saw the node and the exporter load (of @helia/unixfs: its error classes)
      expect(loaded.some((url) => url.includes('/node_modules/libp2p/'))).toBe(true)
      expect(loaded.some((url) => url.includes('/node_modules/ipfs-unixfs-exporter/'))).toBe(true)
      const unused = loaded.filter((url) =>
        /\/node_modules\/(@libp2p\/gossipsub|@libp2p\/kad-dht|ipfs-unixfs-importer)\/|\/@helia\/unixfs\/dist\/src\/(?!errors\.js)|\/src\/import\/(import-capsule|profile)\.ts/.test(
          url,
        ),
      )
      expect(unused).toEqual([])
    } finally {
      await holder.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)

  // ADR 0063: `pi-node seal`'s add (leaves kept as references into a data folder) used to load
  // blockstore-fs's index, and with it a glob library (it-glob, fast-glob, micromatch: ~80
  // modules, ~45 ms of every seal) that only its `getAll` used.
  it('the referenced add into a data folder (what pi-node seal runs) loads no glob library', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'p2p-add-'))
    try {
      const bytes = randomBytes(2 * 1_048_576 + 7)
      const file = join(dir, 'capsule.bin')
      await writeFile(file, bytes)
      const importEntry = new URL('../src/import.ts', import.meta.url).href
      const adder = `
import { registerHooks } from 'node:module'
const loaded = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r } })
const { openFsCapsuleImporter, FilestoreBlockstore, blocksFolder, filestoreFolder } = await import(${JSON.stringify(importEntry)})
const blocks = await openFsCapsuleImporter(${JSON.stringify(join(dir, 'data'))}, { referenceFiles: true })
const cid = await blocks.put({ path: ${JSON.stringify(file)} })
await blocks.close()
const store = new FilestoreBlockstore(blocksFolder(${JSON.stringify(join(dir, 'data'))}), filestoreFolder(${JSON.stringify(join(dir, 'data'))}))
await store.open()
let listed = 0
for await (const _ of store.getAll()) listed++
await store.close()
console.log(JSON.stringify({ cid, listed, loaded }))
`
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--no-warnings', '--input-type=module', '-e', adder],
        { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 60_000 },
      )
      const got = JSON.parse(stdout.trim().split('\n').at(-1) as string)
      // three leaves and their root, all listed (the leaves as references, the root as a copy)
      expect(got.listed).toBe(4)
      const loaded: string[] = got.loaded
      // the probe really saw the importer and the sharding it shares with blockstore-fs load
      expect(loaded.some((url) => url.includes('/node_modules/ipfs-unixfs-importer/'))).toBe(true)
      expect(loaded.some((url) => /\/blockstore-fs\/dist\/src\/sharding\.js$/.test(url))).toBe(true)
      const unused = loaded.filter((url) =>
        /\/node_modules\/(it-glob|fast-glob|micromatch|picomatch|steno)\/|\/blockstore-fs\/dist\/src\/index\.js$/.test(
          url,
        ),
      )
      expect(unused).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
