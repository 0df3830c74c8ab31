/**
 * What the serving side holds for peers that ask and never read (review: 38 such peers took a
 * serving node from 178 to 793 MiB, and nothing ever let go of it). Real helia + libp2p nodes on
 * loopback; the fault injected is on the asking side only: each stalled peer asks for every
 * block (bitswap's want-block) and then stops reading its TCP socket, as a peer would that
 * wants the serving node to hold what it cannot send.
 */
import { randomBytes } from 'node:crypto'
import { decode as decodeDagPb } from '@ipld/dag-pb'
import type { Connection } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONNECTION_BACKLOG_BYTES } from '../src/fetch/block-send/install.ts'
import { bitswapBroker } from '../src/fetch/have-first/bitswap-parts.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { stopNodes } from './connected-pair.ts'

const MiB = 1_048_576
const STALLED = 6
const BUDGET = 6 * MiB
const SEND_TIMEOUT_MS = 1_500

interface Buffering {
  writeBufferLength: number
  socket?: { writableLength?: number; pause(): void }
}
const rawOf = (c: Connection) => (c as unknown as { maConn: Buffering }).maConn
/**
 * Bytes a connection holds in this process, written and not yet taken by the kernel: in the
 * encrypted stream the muxer writes to, in the raw connection and in its socket.
 */
const backlogOf = (c: Connection) => {
  const raw = rawOf(c)
  const encrypted = (c as unknown as { muxer: { maConn: Buffering } }).muxer.maConn
  return encrypted.writeBufferLength + raw.writeBufferLength + (raw.socket?.writableLength ?? 0)
}

async function readAll(
  parts: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const part of parts) chunks.push(part)
  return Buffer.concat(chunks)
}

describe('peers that ask and never read', () => {
  let server: DigicapNode
  const others: DigicapNode[] = []
  let cid: string
  let bytes: Uint8Array
  let leaves: CID[]
  beforeAll(async () => {
    server = await createDigicapNode({ servingMemoryBytes: BUDGET })
    // the serving side's send timeout, shortened from bitswap's 10 s for the test
    ;(
      bitswapBroker(server.helia).bitswap.network as unknown as { messageSendTimeout: number }
    ).messageSendTimeout = SEND_TIMEOUT_MS
    bytes = randomBytes(24 * MiB)
    cid = await heliaCapsuleStore(server.helia).put(bytes)
    const root = decodeDagPb(await readAll(server.helia.blockstore.get(CID.parse(cid))))
    leaves = root.Links.map((l) => l.Hash)
  })
  afterAll(async () => {
    await stopNodes(server, ...others)
  })

  it('hold at most the serving budget and a bounded backlog each, are cut after the send timeout, and an honest fetch still completes', async () => {
    expect(leaves.length).toBe(24)
    const address = multiaddr(server.multiaddrs()[0] as string)
    // the server's side of each stalled connection
    const stalledConnections: Connection[] = []
    for (let k = 0; k < STALLED; k++) {
      // libp2p takes 5 new connections a second from one address
      await new Promise((r) => setTimeout(r, 220))
      const peer = await createDigicapNode({ fetch: 'broadcast', pubsub: false })
      others.push(peer)
      const conn = await peer.libp2p.dial(address)
      // from the first block in, nothing this peer is sent is read
      const network = bitswapBroker(peer.helia).bitswap.network
      const firstBlock = new Promise<void>((resolve) => {
        const onMessage = () => {
          network.removeEventListener('bitswap:message', onMessage)
          rawOf(conn).socket?.pause()
          resolve()
        }
        network.addEventListener('bitswap:message', onMessage)
      })
      const signal = AbortSignal.timeout(60_000)
      for (const leaf of leaves) {
        void readAll(peer.helia.blockstore.get(leaf, { signal })).catch(() => {})
      }
      await firstBlock
      stalledConnections.push(...server.libp2p.getConnections(peer.libp2p.peerId))
    }

    expect(stalledConnections.length).toBe(STALLED)
    let maxHeld = 0
    let maxBacklog = 0
    const sample = setInterval(() => {
      maxHeld = Math.max(maxHeld, server.servingBytes())
      // every connection: the stalled ones and the honest fetcher's
      for (const c of server.libp2p.getConnections())
        maxBacklog = Math.max(maxBacklog, backlogOf(c))
    }, 10)
    try {
      const honest = await createDigicapNode({ pubsub: false })
      others.push(honest)
      await honest.libp2p.dial(address)
      const started = Date.now()
      const got = await readAll(
        heliaCapsuleStore(honest.helia).get(cid, { signal: AbortSignal.timeout(45_000) }),
      )
      expect(Buffer.compare(got, bytes)).toBe(0)
      // the stalled peers held the budget until their sends timed out, no longer
      expect(Date.now() - started).toBeLessThan(SEND_TIMEOUT_MS * 12)

      // every stalled connection was closed once it took no bytes past the timeout (the server
      // may dial the peer again for the wants still open: that connection is read)
      const deadline = Date.now() + SEND_TIMEOUT_MS * 6
      const open = () => stalledConnections.filter((c) => c.status === 'open').length
      while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect(open()).toBe(0)
    } finally {
      clearInterval(sample)
    }
    // blocks read and not yet handed to the kernel: within the budget, plus one block's
    // rounding (a block is charged its size once read)
    expect(maxHeld).toBeGreaterThan(0)
    expect(maxHeld).toBeLessThanOrEqual(BUDGET + MiB)
    // a connection's own backlog: the limit, then one message with its block (and the noise and
    // yamux framing)
    expect(maxBacklog).toBeLessThanOrEqual(CONNECTION_BACKLOG_BYTES + MiB + 64 * 1024)
  }, 90_000)

  it('a peer that reads slowly, a burst every 400 ms, is served to the end and never cut', async () => {
    const peer = await createDigicapNode({ fetch: 'broadcast', pubsub: false })
    others.push(peer)
    await new Promise((r) => setTimeout(r, 250))
    const conn = await peer.libp2p.dial(multiaddr(server.multiaddrs()[0] as string))
    const socket = rawOf(conn).socket as unknown as {
      pause(): void
      resume(): void
      once(event: 'data', listener: () => void): void
    }
    // from the first block in, the socket is read one chunk at a time, 2.5 times a second:
    // draining a block takes the server longer than its send timeout, yet bytes move every 400 ms
    const network = bitswapBroker(peer.helia).bitswap.network
    let reading: NodeJS.Timeout | undefined
    const onMessage = () => {
      network.removeEventListener('bitswap:message', onMessage)
      socket.pause()
      reading = setInterval(() => {
        socket.once('data', () => socket.pause())
        socket.resume()
      }, 400)
    }
    network.addEventListener('bitswap:message', onMessage)
    // the server's side of the connection (its upgrade ends a moment after the dial's)
    let serverSide = server.libp2p.getConnections(peer.libp2p.peerId)
    for (let i = 0; i < 100 && serverSide.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20))
      serverSide = server.libp2p.getConnections(peer.libp2p.peerId)
    }
    expect(serverSide.length).toBe(1)
    try {
      const signal = AbortSignal.timeout(80_000)
      const wanted = leaves.slice(0, 3)
      const got = await Promise.all(
        wanted.map((leaf) => readAll(peer.helia.blockstore.get(leaf, { signal }))),
      )
      expect(got.map((b) => b.byteLength)).toEqual([MiB, MiB, MiB])
      expect(serverSide[0]?.status).toBe('open')
    } finally {
      clearInterval(reading)
      socket.resume()
    }
  }, 90_000)
})
