/**
 * `hubCommittees` over a hub's answers (in memory here; the anvil test in
 * verifier-committee.test.ts reads a real AttestationHub): what it keeps, what it reads again,
 * and what a member with an undecodable registered peer id does to its committee (nothing).
 */
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hubCommittees } from '../src/node/job-committees.ts'
import type { VerifierChain } from '../src/node/verifier/types.ts'

let nodes: DigicapNode[] = []
beforeAll(async () => {
  nodes = await Promise.all([1, 2, 3].map(() => createDigicapNode()))
})
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
})

const job = (i: number) => new Uint8Array(32).fill(i)
const member = (i: number) => `0x${i.toString(16).padStart(40, '0')}` as `0x${string}`

/** A hub whose seats and registry the test sets; counts its seat reads. */
function hub(): {
  chain: Pick<VerifierChain, 'seats' | 'node'>
  seats: Map<number, { members: `0x${string}`[]; closed: boolean }>
  peers: Map<string, Uint8Array>
  reads: () => number
} {
  const seats = new Map<number, { members: `0x${string}`[]; closed: boolean }>()
  const peers = new Map<string, Uint8Array>()
  let reads = 0
  return {
    seats,
    peers,
    reads: () => reads,
    chain: {
      seats: async (jobId) => {
        reads++
        return seats.get(jobId[0] as number) ?? { members: [], closed: false }
      },
      node: async (address) => ({
        peerId: peers.get(address) ?? new Uint8Array(0),
        attestationKeyHash: new Uint8Array(32),
      }),
    },
  }
}

describe('hubCommittees', () => {
  it('a member whose registered peer id does not decode is left out; the others still count', async () => {
    const h = hub()
    h.peers.set(member(1), nodes[0]!.libp2p.peerId.toMultihash().bytes)
    h.peers.set(member(2), Uint8Array.of(0xff)) // a length the registry accepts, no multihash
    h.peers.set(member(3), nodes[1]!.libp2p.peerId.toMultihash().bytes)
    h.seats.set(1, { members: [member(1), member(2), member(3)], closed: true })
    const committees = hubCommittees()({ chain: h.chain })
    expect(await committees.seatedPeers(job(1))).toEqual(
      new Set([nodes[0]!.libp2p.peerId.toString(), nodes[1]!.libp2p.peerId.toString()]),
    )
    expect(committees.trusts(nodes[0]!.libp2p.peerId.toString())).toBe(true)
    expect(committees.trusts(nodes[2]!.libp2p.peerId.toString())).toBe(false)
  })

  it('seats not final yet are read again at most once per pollMs; final ones are kept', async () => {
    const h = hub()
    h.peers.set(member(1), nodes[0]!.libp2p.peerId.toMultihash().bytes)
    h.seats.set(2, { members: [member(1)], closed: false })
    const committees = hubCommittees({ pollMs: 200 })({ chain: h.chain })
    const asked = await Promise.all(
      Array.from({ length: 20 }, () => committees.seatedPeers(job(2))),
    )
    expect(asked.every((a) => a === undefined)).toBe(true)
    expect(h.reads()).toBe(1) // twenty asks, one read in flight
    expect(await committees.seatedPeers(job(2))).toBeUndefined()
    expect(h.reads()).toBe(1) // within pollMs of the last read
    h.seats.set(2, { members: [member(1)], closed: true })
    await new Promise((r) => setTimeout(r, 250))
    expect(await committees.seatedPeers(job(2))).toEqual(
      new Set([nodes[0]!.libp2p.peerId.toString()]),
    )
    for (let i = 0; i < 5; i++) await committees.seatedPeers(job(2))
    expect(h.reads()).toBe(2)
  })

  it('watches of jobs that never seat do not evict a seated committee', async () => {
    const h = hub()
    h.peers.set(member(1), nodes[2]!.libp2p.peerId.toMultihash().bytes)
    h.seats.set(3, { members: [member(1)], closed: true })
    const committees = hubCommittees({ jobsKept: 4, pollMs: 10_000, watchMs: 50 })({
      chain: h.chain,
    })
    await committees.seatedPeers(job(3))
    for (let i = 10; i < 30; i++) committees.watch(job(i))
    await new Promise((r) => setTimeout(r, 100))
    expect(committees.trusts(nodes[2]!.libp2p.peerId.toString())).toBe(true)
    const reads = h.reads()
    expect(await committees.seatedPeers(job(3))).toBeDefined()
    expect(h.reads()).toBe(reads) // still kept, not read again
    committees.stop()
  })
  it('a seated member is trusted for trustMs from the seating, then no longer; another job seats it again', async () => {
    const h = hub()
    const peer = nodes[0]!.libp2p.peerId
    h.peers.set(member(1), peer.toMultihash().bytes)
    h.seats.set(5, { members: [member(1)], closed: true })
    h.seats.set(6, { members: [member(1)], closed: true })
    const committees = hubCommittees({ trustMs: 300 })({ chain: h.chain })
    expect(committees.trusts(peer.toString())).toBe(false) // no committee read yet
    await committees.seatedPeers(job(5))
    expect(committees.trusts(peer.toString())).toBe(true)
    await new Promise((r) => setTimeout(r, 350))
    expect(committees.trusts(peer.toString())).toBe(false) // past it: a stranger again
    // Its committee is still known (no new read), but it no longer lifts the member.
    const reads = h.reads()
    expect(await committees.seatedPeers(job(5))).toBeDefined()
    expect(h.reads()).toBe(reads)
    expect(committees.trusts(peer.toString())).toBe(false)
    // Seated on a newer job: trusted again from that seating.
    await committees.seatedPeers(job(6))
    expect(committees.trusts(peer.toString())).toBe(true)
    committees.stop()
  })
})
