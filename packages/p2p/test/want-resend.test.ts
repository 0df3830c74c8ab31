/**
 * A lost block message never stalls a fetch (ADR 0041). Real helia nodes on loopback; the only
 * fault injected is the one bitswap meets under load: the serving node's block message is
 * dropped after the sender has marked the wants answered (what its 10 s send timeout does).
 * Before the repair the asking node never sent those wants again and the fetch hung until the
 * caller's timeout.
 */
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const MiB = 1_048_576
const RESEND_MS = 1_000

interface Message {
  blocks: Map<string, unknown>
}
interface Network {
  sendMessage(peer: unknown, message: Message, options?: unknown): Promise<void>
}

/**
 * Makes `node`'s bitswap drop its next `count` outgoing messages that carry blocks, as its send
 * timeout does: the ledger believes them sent. Returns how many were dropped so far.
 */
function dropBlockMessages(node: DigicapNode, count: number): () => number {
  const brokers = (node.helia as unknown as { blockBrokers: { name: string }[] }).blockBrokers
  const broker = brokers.find((b) => b.name === 'bitswap') as unknown as {
    bitswap: { network: Network }
  }
  const network = broker.bitswap.network
  const send = network.sendMessage.bind(network)
  let dropped = 0
  network.sendMessage = async (peer, message, options) => {
    if (message.blocks.size > 0 && dropped < count) {
      dropped++
      return
    }
    return send(peer, message, options)
  }
  return () => dropped
}

async function fetchAll(node: DigicapNode, cid: string, timeoutMs: number) {
  let resent = 0
  const parts: Uint8Array[] = []
  for await (const chunk of heliaCapsuleStore(node.helia).get(cid, {
    signal: AbortSignal.timeout(timeoutMs),
    onNetwork: (n) => {
      resent = n.wantsResent
    },
  })) {
    parts.push(chunk)
  }
  return { bytes: Buffer.concat(parts), resent }
}

describe('wantResendMs', () => {
  it.each([
    0,
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 31,
  ])('%s is refused before anything starts (INVALID_ARGUMENT)', async (wantResendMs) => {
    await expect(createDigicapNode({ wantResendMs })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})

describe('a dropped bitswap block message', () => {
  const nodes: DigicapNode[] = []
  const node = async () => {
    const n = await createDigicapNode({ wantResendMs: RESEND_MS })
    nodes.push(n)
    return n
  }
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
  })

  it('is asked again and the fetch completes (it hung before)', async () => {
    const [owner, reader] = await Promise.all([node(), node()])
    await reader.libp2p.dial(multiaddr(owner.multiaddrs()[0] as string))
    const bytes = randomBytes(3 * MiB)
    const cid = await heliaCapsuleStore(owner.helia).put(bytes)
    const dropped = dropBlockMessages(owner, 1)
    const got = await fetchAll(reader, cid, 60_000)
    expect(got.bytes.equals(bytes)).toBe(true)
    expect(dropped()).toBe(1)
    expect(got.resent).toBeGreaterThan(0)
  }, 90_000)

  it('N peers each pulling from all the others, one of them losing block messages, all complete (the lost wants go to every peer again)', async () => {
    const peers = await Promise.all([node(), node(), node(), node()])
    const files = peers.map(() => randomBytes(4 * MiB))
    const cids = await Promise.all(
      peers.map((p, i) => heliaCapsuleStore(p.helia).put(files[i] as Buffer)),
    )
    for (const [i, p] of peers.entries()) {
      for (const q of peers.slice(0, i)) await p.libp2p.dial(multiaddr(q.multiaddrs()[0] as string))
    }
    dropBlockMessages(peers[0] as DigicapNode, 3)
    // every peer fetches every other peer's file at once
    await Promise.all(
      peers.flatMap((p, i) =>
        cids.map(async (cid, j) => {
          if (i === j) return
          // generous: twelve fetches at once on a loaded 2-core box (16 s when idle)
          const { bytes } = await fetchAll(p, cid, 100_000)
          expect(bytes.equals(files[j] as Buffer)).toBe(true)
        }),
      ),
    )
  }, 150_000)
})
