/**
 * A node sends its bitswap messages to a peer on one stream, kept open while messages keep
 * coming: blocks (ADR 0060), wants and cancels (ADR 0061). Real nodes on loopback. Before, each
 * block was a message on a stream of its own: a 16-block fetch opened 16 streams (a protocol
 * negotiation, a peer-record update and six or more yamux frames each), every one starting at
 * yamux's smallest window; each want-list message too (7 for that fetch). A kept stream that
 * ends abnormally mid-fetch (reset by either end) costs no 10 s want resend (ADR 0062).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { BLOCK_STREAM_IDLE_MS } from '../src/fetch/block-send/install.ts'
import { bitswapBroker } from '../src/fetch/have-first/bitswap-parts.ts'
import { WANT_RESEND_MS } from '../src/fetch/want-resend.ts'
import {
  type CapsuleStoreProgressOptions,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
} from '../src/index.ts'
import { connectedPair, stopNodes } from './connected-pair.ts'

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

async function fetchAll(
  node: DigicapNode,
  cid: string,
  options?: CapsuleStoreProgressOptions,
): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of heliaCapsuleStore(node.helia).get(cid, options)) parts.push(chunk)
  return Buffer.concat(parts)
}

describe('blocks sent on one stream per peer', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await connectedPair()
  })
  afterAll(async () => {
    await stopNodes(a, b)
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
    // counted from the reset: A may answer again at once what it sent on the lost stream (blocks
    // whose cancels were still on their way from B, ADR 0062) on the stream it opens next
    const dials = countDials(a)
    for (const stream of received) stream.abort(new Error('reset by the test'))
    await new Promise((r) => setTimeout(r, 100))

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

/** Calls `fault` once, when `node` has received its `count`th block. */
function afterBlocks(node: DigicapNode, count: number, fault: () => void): () => void {
  const wantList = bitswapBroker(node.helia).bitswap.wantList
  let received = 0
  const onBlock = () => {
    if (++received === count) fault()
  }
  wantList.addEventListener('block', onBlock)
  return () => wantList.removeEventListener('block', onBlock)
}

/**
 * The fault: the next bitswap stream `node` opens is aborted (a muxer error) as its `nth`
 * message is written; the streams opened after it are left alone.
 */
function abortOnSend(node: DigicapNode, nth: number) {
  const network = bitswapBroker(node.helia).bitswap.network as unknown as { libp2p: Dialler }
  const dial = network.libp2p.dialProtocol
  let aborted = false
  network.libp2p.dialProtocol = async (peer, protocol, options) => {
    network.libp2p.dialProtocol = dial
    const stream = (await dial.call(network.libp2p, peer, protocol, options)) as Stream
    const send = stream.send.bind(stream)
    let sends = 0
    stream.send = (data) => {
      if (++sends === nth) {
        stream.abort(new Error('muxer error injected by the test'))
        aborted = true
      }
      return send(data)
    }
    return stream
  }
  return { aborted: () => aborted, stop: () => (network.libp2p.dialProtocol = dial) }
}

/** Checks that every block `node` holds hashes to its CID (SHA-256 here); returns how many. */
async function blocksHashToTheirCids(node: DigicapNode): Promise<number> {
  let checked = 0
  for await (const { cid, bytes } of node.helia.blockstore.getAll()) {
    const digest = createHash('sha256')
      .update(await toBytes(bytes))
      .digest()
    expect(Buffer.from(cid.multihash.digest).equals(digest)).toBe(true)
    checked++
  }
  return checked
}

async function toBytes(
  bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<Uint8Array> {
  if (bytes instanceof Uint8Array) return bytes
  const parts: Uint8Array[] = []
  for await (const part of bytes) parts.push(part)
  return Buffer.concat(parts)
}

describe('a kept stream that ends abnormally mid-fetch (ADR 0062)', () => {
  // well under the want resend (10 s) that repaired the loss before: a 12 MiB fetch on loopback
  // takes a fraction of a second, so only a lost message waiting for that resend reaches it
  const BOUND_MS = WANT_RESEND_MS * 0.3
  const SIZE = 12 * MiB
  let a: DigicapNode
  let b: DigicapNode
  beforeEach(async () => {
    ;[a, b] = await connectedPair()
  })
  afterEach(async () => {
    await stopNodes(a, b)
  })

  /** Fetches a fresh file of A into B, `fault` run at B's 4th block; bound to `BOUND_MS`. */
  async function fetchWithFault(fault: () => void) {
    const bytes = randomBytes(SIZE)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const stop = afterBlocks(b, 4, fault)
    const started = performance.now()
    try {
      // the bound is what tells the repair from the 10 s want resend: a fetch that waits for
      // that resend is aborted first
      const got = await fetchAll(b, cid, { signal: AbortSignal.timeout(BOUND_MS) })
      return { same: got.equals(bytes), ms: performance.now() - started }
    } finally {
      stop()
    }
  }

  // a reset at B's 4th block, by the receiver (B's inbound streams) or by the sender (A's
  // outbound ones; nothing is usually still buffered there: a guard)
  it.each([
    { end: 'receiver', node: () => b, direction: 'inbound' as const },
    { end: 'sender', node: () => a, direction: 'outbound' as const },
  ])('the $end resets the block stream: the fetch does not wait for the resend', async ({
    node,
    direction,
  }) => {
    let reset = 0
    const result = await fetchWithFault(() => {
      for (const stream of bitswapStreams(node(), direction)) {
        stream.abort(new Error('reset by the test'))
        reset++
      }
    })
    expect(reset).toBeGreaterThan(0)
    expect(result.same).toBe(true)
    expect(result.ms).toBeLessThan(BOUND_MS)
    expect(await blocksHashToTheirCids(b)).toBeGreaterThanOrEqual(SIZE / MiB)
  }, 60_000)

  // a muxer error on a kept stream while a message is written on it: A's 6th (a block message),
  // or B's 2nd (the first window's wants; the 1st asked for the root)
  it.each([
    { end: 'sender', what: 'a block message', node: () => a, nth: 6 },
    { end: 'asker', what: 'a want-list message', node: () => b, nth: 2 },
  ])('the $end aborts its kept stream while it writes $what: sent again at once', async ({
    node,
    nth,
  }) => {
    const fault = abortOnSend(node(), nth)
    try {
      const result = await fetchWithFault(() => {})
      expect(fault.aborted()).toBe(true)
      expect(result.same).toBe(true)
      expect(result.ms).toBeLessThan(BOUND_MS)
    } finally {
      fault.stop()
    }
    expect(await blocksHashToTheirCids(b)).toBeGreaterThanOrEqual(SIZE / MiB)
  }, 60_000)

  it('a peer that never cancels has its recent blocks answered again once, however often the stream is lost', async () => {
    // broadcast mode is stock bitswap's fetch: it sends no cancels, so the server's ledger keeps
    // every answered want "sent" until it expires; each loss of the server's stream must not send
    // them all again
    const [x, y] = await Promise.all([
      createDigicapNode({ fetch: 'broadcast', pubsub: false }),
      createDigicapNode({ fetch: 'broadcast', pubsub: false }),
    ])
    try {
      await y.libp2p.dial(multiaddr(x.multiaddrs()[0] as string))
      const bytes = randomBytes(8 * MiB)
      const cid = await heliaCapsuleStore(x.helia).put(bytes)
      expect((await fetchAll(y, cid)).equals(bytes)).toBe(true)
      const ledgers = (
        bitswapBroker(x.helia).bitswap.peerWantLists as unknown as {
          ledgerMap: Map<unknown, { bytesSent: number }>
        }
      ).ledgerMap
      const sentToY = () =>
        [...ledgers].reduce((n, [peer, l]) => (String(peer) === y.peerId ? n + l.bytesSent : n), 0)
      const before = sentToY()
      // for 4 s, every bitswap stream x opens to y is lost as soon as it is seen
      let lost = 0
      const until = performance.now() + 4_000
      while (performance.now() < until) {
        for (const stream of bitswapStreams(x, 'outbound')) {
          stream.abort(new Error('lost by the test'))
          lost++
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(lost).toBeGreaterThan(1)
      // the fetch's blocks once more at most, not once per loss
      expect(sentToY() - before).toBeLessThanOrEqual(bytes.length + MiB)
    } finally {
      await Promise.all([x.stop(), y.stop()])
    }
  }, 60_000)

  it('a peer that goes away mid-fetch: the fetch ends in its usual error, nothing unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const fetched = fetchWithFault(() => {
        // the owner stops: its connections close, every stream on them ends abnormally
        void a.stop()
      })
      await expect(fetched).rejects.toMatchObject({
        name: 'CapsuleStoreError',
        hint: 'The fetch was aborted.',
      })
      // what the lost streams reported (none: the peer is gone) and the redials had their turn
      await new Promise((r) => setTimeout(r, 200))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  }, 60_000)
})
