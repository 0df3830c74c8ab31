/**
 * A busy peer keeps its connections (ADR 0041). libp2p's connection monitor pings every
 * connection every 10 s and, by default, aborts it when the answer takes longer than an
 * adaptive timeout of at least 5 s. Under load (a loaded box, a ping frame queued behind
 * megabytes of bitswap blocks on the same connection) that answer comes late: the monitor cut
 * the executors' only connection to the owner mid-fetch, nothing dialled it again, and the
 * fetch stalled with the process idle (the 200 MiB N = 4 pull's stall at 66 MiB). The fault
 * injected here is the late answer alone: a real peer whose ping handler echoes after 7 s.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CONNECTION_PING_INTERVAL_MS,
  CONNECTION_PING_TIMEOUT_MS,
} from '../src/connection-monitor.ts'
import { createDigicapNode, type DigicapNode } from '../src/index.ts'

/** The protocol libp2p's connection monitor (and the ping service) speaks. */
const PING = '/ipfs/ping/1.0.0'
const ANSWER_AFTER_MS = 7_000

interface EchoStream extends AsyncIterable<Uint8Array | { subarray(): Uint8Array }> {
  send(bytes: Uint8Array): boolean
  close(): Promise<void>
}

describe('a connection whose pings are answered late', () => {
  const nodes: DigicapNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('the monitor never has two pings open on one connection (a second one was refused and cut it)', () => {
    expect(CONNECTION_PING_TIMEOUT_MS).toBeLessThan(CONNECTION_PING_INTERVAL_MS)
  })

  it('is kept (the monitor aborted it after 5 s before)', async () => {
    const [asker, busy] = await Promise.all([createDigicapNode(), createDigicapNode()])
    nodes.push(asker, busy)
    // the busy peer answers every ping, 7 s late
    await busy.libp2p.unhandle(PING)
    await busy.libp2p.handle(
      PING,
      async (stream: EchoStream) => {
        for await (const chunk of stream) {
          const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
          await new Promise((r) => setTimeout(r, ANSWER_AFTER_MS))
          stream.send(bytes)
        }
        await stream.close()
      },
      { force: true } as never,
    )
    await asker.libp2p.dial(multiaddr(busy.multiaddrs()[0] as string))
    const closed: number[] = []
    const t0 = Date.now()
    asker.libp2p.addEventListener('connection:close', () => closed.push(Date.now() - t0))
    // libp2p's monitor pinged 10 s after start and gave up 5 s later; now the first ping is at
    // 60 s and may take 50 s. Past the old abort (15 s) the connection is still there.
    await new Promise((r) => setTimeout(r, 19_000))
    expect(closed).toEqual([])
    expect(asker.libp2p.getConnections(busy.libp2p.peerId)).toHaveLength(1)
  }, 40_000)
})
