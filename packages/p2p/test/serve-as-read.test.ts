/**
 * The serving side sends each block as it is read (ADR 0057). Real helia + libp2p nodes on
 * loopback; the fault injected is a slow store on the serving node (30 ms a block read, a busy
 * disk). Before, bitswap's ledger read every block of a window, then sent them all: the asking
 * node received 8 blocks in 3 messages (4 MiB each at most), the first only after the 8th read,
 * and the serving node held the whole window read and unsent.
 */
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { code as RAW_CODE } from 'multiformats/codecs/raw'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVE_READ_AHEAD } from '../src/fetch/block-send/serve-as-read.ts'
import { bitswapBroker } from '../src/fetch/have-first/bitswap-parts.ts'
import { FETCH_WINDOW_BLOCKS } from '../src/fetch/windowed-cat.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { connectedPair, stopNodes } from './connected-pair.ts'

const MiB = 1_048_576
const READ_MS = 30

interface Store {
  get(cid: CID, options?: object): AsyncIterable<Uint8Array>
  has(cid: CID, options?: object): Promise<boolean>
}
/** The store bitswap's serving side reads blocks from (helia's own blockstore, not its wrapper). */
const storeOf = (node: DigicapNode) =>
  (node.helia as unknown as { components: { blockstore: Store } }).components.blockstore

interface Received {
  detail: { message: { blocks: { data: Uint8Array }[] } }
}

describe('the serving side sends each block as it is read', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await connectedPair()
  })
  afterAll(async () => {
    await stopNodes(a, b)
  })

  it('a window of 8 blocks arrives as 8 messages, the first before the 8th block is read, with at most a few blocks read ahead', async () => {
    const bytes = randomBytes(FETCH_WINDOW_BLOCKS * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)

    // B's messages that carry leaves (1 MiB blocks), and when the first came
    let leafMessages = 0
    let leaves = 0
    let firstLeafAt = 0
    // A's leaf reads are slow; each read done is counted (and when), against the leaves received
    let readAhead = 0
    const store = storeOf(a)
    const ownGet = store.get.bind(store)
    let reads = 0
    let lastReadAt = 0
    store.get = async function* (key, options) {
      if (key.code === RAW_CODE) await new Promise((r) => setTimeout(r, READ_MS))
      yield* ownGet(key, options)
      if (key.code === RAW_CODE) {
        reads++
        lastReadAt = performance.now()
        readAhead = Math.max(readAhead, reads - leaves)
      }
    }
    const onMessage = (event: Event) => {
      const n = (event as unknown as Received).detail.message.blocks.filter(
        (block) => block.data.byteLength === MiB,
      ).length
      if (n === 0) return
      leafMessages++
      leaves += n
      firstLeafAt ||= performance.now()
    }
    const network = bitswapBroker(b.helia).bitswap.network
    network.addEventListener('bitswap:message', onMessage)
    try {
      const parts: Uint8Array[] = []
      for await (const chunk of heliaCapsuleStore(b.helia).get(cid)) parts.push(chunk)
      expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    } finally {
      network.removeEventListener('bitswap:message', onMessage)
      store.get = ownGet
    }
    expect(leaves).toBe(FETCH_WINDOW_BLOCKS)
    // one message a block (before: 3 messages, 3 + 3 + 2 blocks)
    expect(leafMessages).toBe(FETCH_WINDOW_BLOCKS)
    // the first block was on its way while the others were read (before: after the last read)
    expect(firstLeafAt).toBeLessThan(lastReadAt)
    // blocks read and not yet received: the read-ahead and the ones on the wire (before: 8)
    expect(readAhead).toBeLessThanOrEqual(2 * SERVE_READ_AHEAD)
  }, 60_000)

  it('a block served is looked up once in the store (the ledger asked `has`, then `get` asked it again)', async () => {
    const bytes = randomBytes(4 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const store = storeOf(a)
    const ownHas = store.has.bind(store)
    let lookups = 0
    store.has = async (key, options) => {
      if (key.code === RAW_CODE) lookups++
      return ownHas(key, options)
    }
    try {
      const parts: Uint8Array[] = []
      for await (const chunk of heliaCapsuleStore(b.helia).get(cid)) parts.push(chunk)
      expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    } finally {
      store.has = ownHas
    }
    // one per leaf served (before: 8, two per leaf)
    expect(lookups).toBe(4)
  }, 60_000)

  it('a node asked for a block it does not hold says so, and does not fetch it from its peers', async () => {
    const c = await createDigicapNode()
    const d = await createDigicapNode()
    try {
      // c holds the capsule; a (connected to c) does not; d asks both
      const bytes = randomBytes(2 * MiB)
      const cid = await heliaCapsuleStore(c.helia).put(bytes)
      await a.libp2p.dial(multiaddr(c.multiaddrs()[0] as string))
      await d.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
      await d.libp2p.dial(multiaddr(c.multiaddrs()[0] as string))
      const parts: Uint8Array[] = []
      for await (const chunk of heliaCapsuleStore(d.helia).get(cid, {
        signal: AbortSignal.timeout(30_000),
      }))
        parts.push(chunk)
      expect(Buffer.concat(parts).equals(bytes)).toBe(true)
      // a answered from its own store only: it asked c for nothing
      await new Promise((r) => setTimeout(r, 500))
      expect(await a.helia.blockstore.has(CID.parse(cid))).toBe(false)
    } finally {
      await Promise.all([c.stop(), d.stop()])
    }
  }, 60_000)
})

describe('a block held but unreadable (its capsule file changed under the reference)', () => {
  it('is not served, and the blocks wanted with it still are, at once', async () => {
    const { mkdtemp, open, rm, utimes, writeFile } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { sha256 } = await import('multiformats/hashes/sha2')
    const { openFsCapsuleImporter } = await import('../src/import.ts')
    const MiB = 1024 * 1024
    const dir = await mkdtemp(join(tmpdir(), 'serve-poisoned-'))
    const dataDir = join(dir, 'data')
    const [fileA, fileB] = [join(dir, 'a.bin'), join(dir, 'b.bin')]
    const [a, b] = [randomBytes(3 * MiB), randomBytes(3 * MiB)]
    await writeFile(fileA, a)
    await writeFile(fileB, b)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    await importer.put({ path: fileA })
    await importer.put({ path: fileB })
    await importer.close()
    // one byte of A's first leaf changes in place, after the add
    const fh = await open(fileA, 'r+')
    await fh.write(Uint8Array.of((a[5] as number) ^ 1), 0, 1, 5)
    await fh.close()
    await utimes(fileA, new Date(), new Date(Date.now() + 5000))
    const leaf = async (bytes: Uint8Array) => CID.createV1(RAW_CODE, await sha256.digest(bytes))
    const server = await createDigicapNode({ dataDir, datastore: 'memory' })
    const fetcher = await createDigicapNode()
    try {
      await fetcher.libp2p.dial(multiaddr(server.multiaddrs()[0] as string))
      const get = async (cid: CID) => {
        const started = Date.now()
        const parts: Uint8Array[] = []
        for await (const p of fetcher.helia.blockstore.get(cid, {
          signal: AbortSignal.timeout(8000),
        }))
          parts.push(p)
        return Date.now() - started
      }
      const bad = get(await leaf(a.subarray(0, MiB))).then(
        () => 'served',
        () => 'not served',
      )
      // B's leaves are wanted in the same message as A's damaged one
      const good = await Promise.all(
        [0, 1, 2].map(async (i) => get(await leaf(b.subarray(i * MiB, (i + 1) * MiB)))),
      )
      for (const ms of good) expect(ms).toBeLessThan(5000)
      expect(await bad).toBe('not served')
    } finally {
      await Promise.all([server.stop(), fetcher.stop()])
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
