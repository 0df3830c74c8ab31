/**
 * A fetch between two real nodes holds a bounded number of blocks whatever the capsule's size:
 * with a reader slower than the network, the blocks received never run more than two windows
 * ahead of the bytes read (the exporter alone fetched and queued the whole file). The bytes
 * still arrive whole and in order, including sizes at and around a window's edge.
 */
import { randomBytes } from 'node:crypto'
import { unixfs } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import { code as RAW_CODE } from 'multiformats/codecs/raw'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FETCH_AHEAD_BLOCKS, FETCH_WINDOW_BLOCKS, windowedCat } from '../src/fetch/windowed-cat.ts'
import { type DigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { unixfsReader } from '../src/read/unixfs-reader.ts'
import { connectedPair, stopNodes } from './connected-pair.ts'

const MiB = 1_048_576

describe('heliaCapsuleStore.get between two nodes', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await connectedPair()
  })
  afterAll(async () => {
    await stopNodes(a, b)
  })

  it('a slow reader of 40 MiB never has more than two windows of blocks received ahead', async () => {
    const bytes = randomBytes(40 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    let received = 0
    let read = 0
    let maxAhead = 0
    const parts: Buffer[] = []
    for await (const chunk of heliaCapsuleStore(b.helia).get(cid, {
      onNetwork: (n) => {
        received = n.blocksReceived
      },
    })) {
      read += chunk.byteLength
      parts.push(Buffer.from(chunk))
      maxAhead = Math.max(maxAhead, received - Math.floor(read / MiB))
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    // the blocks a fetch holds (16), plus the root node and one block of slack
    expect(maxAhead).toBeLessThanOrEqual(FETCH_AHEAD_BLOCKS + 2)
  }, 120_000)

  it("reads the file's root from the blockstore once, not once per window", async () => {
    const bytes = randomBytes(12 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const root = CID.parse(cid)
    let rootReads = 0
    const counted = new Proxy(b.helia.blockstore, {
      get(target, prop, receiver) {
        if (prop !== 'get') return Reflect.get(target, prop, receiver)
        return (key: CID, options?: object) => {
          if (key.equals(root)) rootReads++
          return target.get(key, options)
        }
      },
    })
    const parts: Uint8Array[] = []
    for await (const c of windowedCat(unixfsReader(counted) as never, root)) parts.push(c)
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    // 12 leaves are two windows; before: the root was read again for each (2 reads)
    expect(rootReads).toBe(1)
  }, 60_000)

  it('with a fast reader, the next window is already asked for while one is waited for (no stop-and-wait)', async () => {
    const bytes = randomBytes(4 * FETCH_WINDOW_BLOCKS * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    // leaf reads through B's blockstore (each one the network's until the leaf is in), at once
    let inFlight = 0
    let maxInFlight = 0
    const counted = new Proxy(b.helia.blockstore, {
      get(target, prop, receiver) {
        if (prop !== 'get') return Reflect.get(target, prop, receiver)
        return async function* (key: CID, options?: object) {
          if (key.code !== RAW_CODE) return yield* target.get(key, options)
          maxInFlight = Math.max(maxInFlight, ++inFlight)
          try {
            yield* target.get(key, options)
          } finally {
            inFlight--
          }
        }
      },
    })
    const parts: Uint8Array[] = []
    for await (const c of windowedCat(unixfsReader(counted) as never, CID.parse(cid))) {
      parts.push(c)
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    // two windows asked at once (before: one window and the first leaf of the next, and that
    // leaf again from the window before, at most)
    expect(maxInFlight).toBeGreaterThan(FETCH_WINDOW_BLOCKS + 2)
    expect(maxInFlight).toBeLessThanOrEqual(FETCH_AHEAD_BLOCKS + 2)
  }, 60_000)

  it.each([
    0,
    1,
    4 * MiB,
    8 * MiB,
    8 * MiB + 1,
  ])('%i bytes arrive whole with 3 windows of 4 blocks requested ahead (windows past the end are never read)', async (size) => {
    const bytes = randomBytes(size)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const parts: Uint8Array[] = []
    for await (const c of windowedCat(unixfs(b.helia), CID.parse(cid), {
      windowBytes: 4 * MiB,
      windowsAhead: 3,
    })) {
      parts.push(c)
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
  }, 60_000)

  it.each([
    0,
    1,
    FETCH_WINDOW_BLOCKS * MiB - 1,
    FETCH_WINDOW_BLOCKS * MiB,
    FETCH_WINDOW_BLOCKS * MiB + 1,
    2 * FETCH_WINDOW_BLOCKS * MiB,
  ])('%i bytes arrive whole and in order', async (size) => {
    const bytes = randomBytes(size)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const parts: Uint8Array[] = []
    for await (const c of heliaCapsuleStore(b.helia).get(cid)) parts.push(c)
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
  }, 60_000)
})
