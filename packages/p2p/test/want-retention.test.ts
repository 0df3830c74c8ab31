/**
 * A want a serving node keeps holds its CID, not the message it came in (ADR 0090). The ledger
 * of `@helia/bitswap` 4 keeps each want of a block the node lacks (up to 1 024 per peer) until
 * the peer cancels it or leaves, and decoded its CID as a view into the received message: a
 * peer sending each want with 3.9 MB of unasked block bytes beside it had all of them kept.
 * Real nodes on loopback; the attacker is a real node whose messages are written by hand.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { code as RAW_CODE } from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode } from '../src/index.ts'

interface LedgerWant {
  cid: CID
}
interface Bitswap {
  network: { sendMessage(peer: unknown, message: unknown): Promise<void> }
  peerWantLists: {
    ledgerMap: { get(peer: unknown): { wants: Map<string, LedgerWant> } | undefined }
  }
}
const bitswapOf = (node: DigicapNode) =>
  (
    (
      node.helia as unknown as { blockBrokers: { name: string; bitswap: Bitswap }[] }
    ).blockBrokers.find((b) => b.name === 'bitswap') as { bitswap: Bitswap }
  ).bitswap

const WANTS = 40
const PADDING = 3_900_000

describe('wants padded with unasked block bytes', () => {
  const nodes: DigicapNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('are kept by the serving node at the size of their CIDs, not of their messages', async () => {
    const [server, attacker] = await Promise.all([
      createDigicapNode({ pubsub: false }),
      createDigicapNode({ pubsub: false }),
    ])
    nodes.push(server, attacker)
    await attacker.libp2p.dial(multiaddr(server.multiaddrs()[0] as string))
    const network = bitswapOf(attacker).network
    for (let i = 0; i < WANTS; i++) {
      // a block the server does not have: the want stays in its ledger
      const absent = CID.createV1(RAW_CODE, await sha256.digest(Uint8Array.of(i, 1, 2, 3)))
      await network.sendMessage(server.libp2p.peerId, {
        full: false,
        pendingBytes: 0,
        wantlist: new Map([
          [
            'w',
            {
              cid: absent.bytes,
              priority: 1,
              wantType: 'WantHave',
              cancel: false,
              sendDontHave: false,
            },
          ],
        ]),
        // nobody asked for it: dropped, but its bytes share the message's buffer with the want
        blocks: new Map([
          [
            'b',
            { data: new Uint8Array(PADDING).fill(i), prefix: Uint8Array.of(1, RAW_CODE, 0x12, 32) },
          ],
        ]),
        blockPresences: new Map(),
      })
    }
    const ledger = () => bitswapOf(server).peerWantLists.ledgerMap.get(attacker.libp2p.peerId)
    const deadline = Date.now() + 20_000
    while ((ledger()?.wants.size ?? 0) < WANTS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20))
    }
    const wants = [...(ledger()?.wants.values() ?? [])]
    expect(wants).toHaveLength(WANTS)
    // the buffers the kept wants hold alive: 40 × 3.9 MB before, a few KiB now
    const held = new Set(wants.flatMap((w) => [w.cid.bytes.buffer, w.cid.multihash.digest.buffer]))
    const heldBytes = [...held].reduce((n, b) => n + b.byteLength, 0)
    expect(heldBytes).toBeLessThan(64 * 1024)
  }, 60_000)
})
