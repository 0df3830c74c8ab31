/**
 * A flood of tiny bitswap messages is cut at the connection before bitswap reads it (ADR 0090).
 * Each message costs the receiver ~40 µs however small, and bitswap's reader handles all the
 * messages of a chunk in one run of microtasks: 256 KiB of zero bytes (262 144 empty messages)
 * on one stream stopped the node's event loop for ~10 s. Real nodes on loopback; the flooder is
 * a real node writing raw bytes on a bitswap stream.
 */
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const BITSWAP = '/ipfs/bitswap/1.2.0'

describe('a peer sending bitswap messages of nothing', () => {
  const nodes: DigicapNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('has its connection cut before the node stalls; the node goes on serving others', async () => {
    const [server, flooder, puller] = await Promise.all(
      [0, 1, 2].map(() => createDigicapNode({ pubsub: false })),
    )
    nodes.push(server as DigicapNode, flooder as DigicapNode, puller as DigicapNode)
    const s = server as DigicapNode
    const f = flooder as DigicapNode
    const p = puller as DigicapNode
    const content = randomBytes(3 * 1_048_576)
    const cid = await heliaCapsuleStore(s.helia).put(content)
    await f.libp2p.dial(multiaddr(s.multiaddrs()[0] as string))
    // the event loop's longest stall while the flood is read (this process holds every node)
    let longest = 0
    let last = performance.now()
    const beat = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 20)
    try {
      const stream = await f.libp2p.dialProtocol(s.libp2p.peerId, BITSWAP)
      // 262 144 length prefixes of zero: as many empty messages
      stream.send(new Uint8Array(256 * 1024))
      const deadline = Date.now() + 15_000
      while (s.libp2p.getConnections(f.libp2p.peerId).length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(s.libp2p.getConnections(f.libp2p.peerId)).toHaveLength(0)
      // an honest fetch from the same node still completes
      await p.libp2p.dial(multiaddr(s.multiaddrs()[0] as string))
      const parts: Uint8Array[] = []
      for await (const part of heliaCapsuleStore(p.helia).get(cid, {
        signal: AbortSignal.timeout(20_000),
      })) {
        parts.push(part)
      }
      expect(Buffer.concat(parts).equals(content)).toBe(true)
    } finally {
      clearInterval(beat)
    }
    // ~10 s before; the frames are counted, not decoded, and the chunk never reaches bitswap
    expect(longest).toBeLessThan(1_000)
  }, 60_000)
})

describe('block messages and the message budget', () => {
  const nodes: DigicapNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('a fetch of many blocks at once is not cut: only small messages count', async () => {
    // A budget far below the fetch's block messages: 40 one-MiB leaves arrive in a burst, as
    // they do at any rate on a fast link (at 1 GB/s, ~1 000 a second against 512/s).
    const budget = { burst: 30, ratePerSecond: 1 }
    const [server, fetcher] = await Promise.all([
      createDigicapNode({ pubsub: false, bitswapMessageBudget: budget }),
      createDigicapNode({ pubsub: false, bitswapMessageBudget: budget }),
    ])
    nodes.push(server as DigicapNode, fetcher as DigicapNode)
    const s = server as DigicapNode
    const f = fetcher as DigicapNode
    const content = randomBytes(40 * 1_048_576)
    const cid = await heliaCapsuleStore(s.helia).put(content)
    await f.libp2p.dial(multiaddr(s.multiaddrs()[0] as string))
    // A cut connection is redialled and the fetch still ends: count the cuts themselves.
    let closed = 0
    f.libp2p.addEventListener('connection:close', () => {
      closed++
    })
    let n = 0
    for await (const part of heliaCapsuleStore(f.helia).get(cid, {
      signal: AbortSignal.timeout(40_000),
    })) {
      n += part.byteLength
    }
    expect(n).toBe(content.byteLength)
    expect(closed).toBe(0)
    // The same budget still cuts a flood of small messages.
    // (The fetcher may dial the server again at once, so the cut is counted, not the
    // connections left.)
    const stream = await f.libp2p.dialProtocol(s.libp2p.peerId, BITSWAP)
    stream.send(new Uint8Array(64))
    const deadline = Date.now() + 15_000
    while (closed === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(closed).toBeGreaterThan(0)
  }, 90_000)
})
