/**
 * A node sends its bitswap messages to a peer on one stream, kept open while messages keep
 * coming: blocks (ADR 0060), wants and cancels (ADR 0061). Real nodes on loopback. Before, each
 * block was a message on a stream of its own: a 16-block fetch opened 16 streams (a protocol
 * negotiation, a peer-record update and six or more yamux frames each), every one starting at
 * yamux's smallest window; each want-list message too (7 for that fetch).
 */
import { randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BLOCK_STREAM_IDLE_MS } from '../src/fetch/block-send/install.ts'
import { bitswapBroker } from '../src/fetch/have-first/bitswap-parts.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const MiB = 1_048_576
const BITSWAP = '/ipfs/bitswap/1.2.0'

interface Dialler {
  dialProtocol(peer: unknown, protocol: string, options?: object): Promise<unknown>
}

/** Counts the bitswap streams `node` opens (its network's dials of the protocol). */
function countDials(node: DigicapNode): { count: () => number; stop: () => void } {
  const libp2p = bitswapBroker(node.helia).bitswap.network as unknown as { libp2p: Dialler }
  const own = libp2p.libp2p.dialProtocol
  let dials = 0
  libp2p.libp2p.dialProtocol = (peer, protocol, options) => {
    if (protocol === BITSWAP) dials++
    return own.call(libp2p.libp2p, peer, protocol, options)
  }
  return {
    count: () => dials,
    stop: () => {
      libp2p.libp2p.dialProtocol = own
    },
  }
}

/** The bitswap streams open on `node`'s connections, in `direction`. */
function bitswapStreams(node: DigicapNode, direction: 'inbound' | 'outbound') {
  return node.libp2p
    .getConnections()
    .flatMap((c) => c.streams)
    .filter((s) => s.protocol === BITSWAP && s.direction === direction)
}

async function fetchAll(node: DigicapNode, cid: string): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of heliaCapsuleStore(node.helia).get(cid)) parts.push(chunk)
  return Buffer.concat(parts)
}

describe('blocks sent on one stream per peer', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await Promise.all([createDigicapNode(), createDigicapNode()])
    await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
  })
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('a 16-block fetch comes on one stream, closed once idle; the next fetch opens another', async () => {
    const bytes = randomBytes(16 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const dials = countDials(a)
    const wants = countDials(b)
    try {
      expect((await fetchAll(b, cid)).equals(bytes)).toBe(true)
      // before: one stream per block (16 leaves and the root)
      expect(dials.count()).toBe(1)
      // B's wants and cancels, one stream too (before: one per want-list message, 7 here)
      expect(wants.count()).toBe(1)
      expect(bitswapStreams(a, 'outbound')).toHaveLength(1)
      await new Promise((r) => setTimeout(r, BLOCK_STREAM_IDLE_MS + 500))
      expect(bitswapStreams(a, 'outbound')).toHaveLength(0)

      const more = randomBytes(3 * MiB)
      const second = await heliaCapsuleStore(a.helia).put(more)
      expect((await fetchAll(b, second)).equals(more)).toBe(true)
      expect(dials.count()).toBe(2)
    } finally {
      dials.stop()
      wants.stop()
    }
  }, 60_000)

  it('a block stream the receiver reset is not written again: the next blocks go on a new one', async () => {
    const first = randomBytes(2 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(first)
    expect((await fetchAll(b, cid)).equals(first)).toBe(true)
    const received = bitswapStreams(b, 'inbound')
    expect(received.length).toBeGreaterThan(0)
    for (const stream of received) stream.abort(new Error('reset by the test'))
    await new Promise((r) => setTimeout(r, 100))

    const dials = countDials(a)
    try {
      const next = randomBytes(4 * MiB)
      const second = await heliaCapsuleStore(a.helia).put(next)
      const started = performance.now()
      expect((await fetchAll(b, second)).equals(next)).toBe(true)
      // no block lost on the reset stream (a lost block waits 10 s for its want to be sent again)
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(dials.count()).toBe(1)
    } finally {
      dials.stop()
    }
  }, 60_000)

  it('each block comes in one yamux frame: one send per message, the largest receive window', async () => {
    // no block stream left open by the tests before
    await new Promise((r) => setTimeout(r, BLOCK_STREAM_IDLE_MS + 300))
    // every stream A opens to B, from its first frame: its frames (message events) and bytes
    const counted: { stream: Stream; frames: number; bytes: number }[] = []
    const muxer = (
      b.libp2p.getConnections()[0] as unknown as { muxer: EventTarget & { rtt: number } }
    ).muxer
    // the round trip yamux measured at connection start, as on loopback: 0 ms (measured in a busy
    // test process it can be tens of ms, and every window update then counts as prompt)
    muxer.rtt = 0
    const onStream = (event: Event) => {
      const stream = (event as CustomEvent<Stream>).detail
      const count: (typeof counted)[number] = { stream, frames: 0, bytes: 0 }
      counted.push(count)
      stream.addEventListener('message', (message) => {
        const size = (message as unknown as { data: { byteLength: number } }).data.byteLength
        count.frames++
        count.bytes += size
        // fault injection: a busy receiver (a loaded node hashing and storing what it receives),
        // 5 ms per frame before yamux answers it with a window update
        const until = performance.now() + 5
        while (performance.now() < until) {}
      })
    }
    muxer.addEventListener('stream', onStream)
    try {
      const content = randomBytes(16 * MiB)
      const cid = await heliaCapsuleStore(a.helia).put(content)
      expect((await fetchAll(b, cid)).equals(content)).toBe(true)
    } finally {
      muxer.removeEventListener('stream', onStream)
    }
    const blocks = counted.filter((c) => c.stream.protocol === BITSWAP && c.bytes > 16 * MiB)
    expect(blocks).toHaveLength(1)
    // before: 5 to 6 frames a block (the length prefix and the block's framing each a frame of
    // their own, then 256 KiB of the block a frame: yamux's first window, which yamux never
    // widens for a receiver slower than four round trips), each answered by a window update;
    // now about one (a window update arriving mid-block may split one in two), and the
    // protocol negotiation's
    expect(blocks[0]?.frames).toBeLessThanOrEqual(16 + 8)
  }, 60_000)
})
