/**
 * A fetch between two real nodes holds a bounded number of blocks whatever the capsule's size:
 * with a reader slower than the network, the blocks received never run more than
 * `FETCH_WINDOWS_IN_FLIGHT` windows ahead of the bytes read (the exporter alone fetched and
 * queued the whole file). With a fast reader the next windows are already requested while one
 * is still arriving (one window at a time left the wire idle at each window's end), never more
 * than the bound. The bytes still arrive whole and in order, including sizes at and around a
 * window's edge.
 */
import { randomBytes } from 'node:crypto'
import { unixfs } from '@helia/unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  FETCH_WINDOW_BLOCKS,
  FETCH_WINDOWS_IN_FLIGHT,
  windowedCat,
} from '../src/fetch/windowed-cat.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const MiB = 1_048_576

/** The store's fetch (`windowedCat` over helia's UnixFS) with helia's raw progress events. */
function windowedCatOf(
  node: DigicapNode,
  cid: string,
  onProgress: (event: { type: string; detail?: unknown }) => void,
) {
  return windowedCat(unixfs(node.helia), CID.parse(cid), { onProgress })
}

describe('heliaCapsuleStore.get between two nodes', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await Promise.all([createDigicapNode(), createDigicapNode()])
    await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
  })
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('a slow reader of 40 MiB never has more than the windows in flight received ahead', async () => {
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
    // the windows in flight, plus the root node and one block of slack
    expect(maxAhead).toBeLessThanOrEqual(FETCH_WINDOWS_IN_FLIGHT * FETCH_WINDOW_BLOCKS + 2)
  }, 120_000)

  it('a fast reader keeps more than one window of blocks requested, and never more than the bound', async () => {
    const bytes = randomBytes(20 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    // helia's own progress events: a block asked of the network, then stored once it arrived
    const pending = new Set<string>()
    let maxPending = 0
    const parts: Uint8Array[] = []
    for await (const chunk of windowedCatOf(b, cid, (event) => {
      if (event.type === 'blocks:get:providers:get') pending.add(String(event.detail))
      else if (event.type === 'blocks:get:blockstore:put') pending.delete(String(event.detail))
      maxPending = Math.max(maxPending, pending.size)
    })) {
      parts.push(chunk)
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    expect(maxPending).toBeGreaterThan(FETCH_WINDOW_BLOCKS)
    expect(maxPending).toBeLessThanOrEqual(FETCH_WINDOWS_IN_FLIGHT * FETCH_WINDOW_BLOCKS)
  }, 120_000)

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
