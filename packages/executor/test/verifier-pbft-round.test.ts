/**
 * The verifier's PBFT round (pbft-round.ts) on real libp2p nodes over loopback, under hostile
 * input while a member is still watching its run (votes wait in its inbox): garbage, an
 * oversized frame, a stranger's stream, a vote for another job, one far out of view, a vote
 * signed by another member than the sender, replays and a flood past the inbox bound. Nothing
 * throws into the host, the inbox stays bounded, and the four members still decide; a second
 * round on a node waits for the first to stop.
 */
import { randomBytes } from 'node:crypto'
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import {
  beforeRoundId,
  type PbftCommittee,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyCertificate,
} from '@digicap/committee'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL } from '@digicap/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PbftRound, pbftRounds } from '../src/node/index.ts'

const INBOX = 16

const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const jobId = new Uint8Array(randomBytes(32))
const beforeId = beforeRoundId(jobId)
const value = { verdict: 7, evidenceHash: new Uint8Array(randomBytes(32)) }
let nodes: DigicapNode[] = []
let stranger: DigicapNode
let keys: DigicapSigner[]
let committee: PbftCommittee

beforeAll(async () => {
  nodes = await Promise.all([0, 1, 2, 3].map(() => createDigicapNode()))
  stranger = await createDigicapNode()
  for (const [i, a] of nodes.entries()) {
    for (const b of nodes.slice(i + 1)) await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]!)
  }
  await stranger.libp2p.dial(nodes[0]!.libp2p.getMultiaddrs()[0]!)
  keys = nodes.map(() => privateKeySigner(new Uint8Array(randomBytes(32))))
  committee = pbftCommittee(
    keys.map((k, i) => ({ address: k.address, peerId: nodes[i]!.libp2p.peerId.toString() })),
  )
}, 60_000)

afterAll(async () => {
  await Promise.all([...nodes, stranger].map((n) => n.stop()))
})

/** Raw bytes on one stream from `from` to node 0; the receiver may abort first (the point). */
async function rawSend(from: DigicapNode, bytes: Uint8Array): Promise<void> {
  try {
    const stream = await from.libp2p.dialProtocol(nodes[0]!.libp2p.peerId, PBFT_PROTOCOL)
    stream.send(bytes)
    await stream.close()
  } catch {}
}

const voteFrame = async (signer: DigicapSigner, v: Partial<Parameters<typeof signVote>[2]> = {}) =>
  encodeFrame(
    encodePbftMessage({
      vote: await signVote(signer, domain, {
        phase: 'prepare',
        jobId,
        view: 0n,
        preparedView: 0n,
        ...value,
        ...v,
      }),
      proof: [],
    }),
  )

const until = async (cond: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 25))
}

describe('the verifier PBFT round', () => {
  it('keeps hostile votes out of a watching member’s inbox (bounded), then the four decide', async () => {
    const rounds = nodes.map((n) => pbftRounds(n.libp2p))
    const open = (i: number) =>
      rounds[i]!.open({
        committee,
        domain,
        roundIds: [beforeId, jobId],
        signer: keys[i]!,
        viewTimeoutMs: 3000,
        inboxLimit: INBOX,
      })
    const members: PbftRound[] = await Promise.all([0, 1, 2, 3].map(open))
    const target = members[0]!
    const sender = nodes[1]!
    try {
      // Member 0 is still watching: everything below reaches its transport before its value.
      await rawSend(sender, new Uint8Array([0, 0, 0, 5, 1, 2, 3, 4, 5])) // garbage frame
      await rawSend(sender, encodeFrame(new Uint8Array(70 * 1024))) // oversized
      await rawSend(stranger, await voteFrame(keys[1]!)) // a stranger's stream
      await rawSend(sender, await voteFrame(keys[1]!, { jobId: new Uint8Array(32) })) // another job
      await rawSend(sender, await voteFrame(keys[1]!, { view: 1000n })) // far out of view
      await rawSend(sender, await voteFrame(keys[2]!)) // signed by member 2, sent by member 1
      const replayed = await voteFrame(keys[1]!)
      for (let i = 0; i < 3; i++) await rawSend(sender, replayed)
      await until(() => target.transport.stats.received >= 7)
      expect(target.transport.stats.nonMember).toBe(1)
      expect(target.transport.stats.rejected).toBeGreaterThanOrEqual(2) // garbage, oversized
      // A flood of well-formed votes past the bound: the oldest go, the inbox stays bounded.
      const flood = await voteFrame(keys[3]!, { phase: 'commit', view: 2n })
      for (let i = 0; i < INBOX + 20; i++) await rawSend(nodes[3]!, flood)
      await until(() => target.transport.stats.received >= 7 + INBOX + 20)
      expect(target.waiting).toBeLessThanOrEqual(INBOX)
      // The honest members decide, member 0 last (it takes its inbox first).
      const others = [1, 2, 3].map((i) => members[i]!.decide(jobId, value, 30_000))
      await new Promise((r) => setTimeout(r, 300))
      const certificates = await Promise.all([target.decide(jobId, value, 30_000), ...others])
      for (const c of certificates) {
        expect(() => verifyCertificate(c, committee, { domain, jobId })).not.toThrow()
        expect(c.verdict).toBe(7)
      }
      expect(target.refused).toBeGreaterThanOrEqual(3) // another job (at the inbox), wrong signer, +
      // The before round's votes waited apart (the flood was the final round's): it decides too.
      const before = { verdict: 1, evidenceHash: value.evidenceHash }
      const rounds2 = await Promise.all(members.map((m) => m.decide(beforeId, before, 30_000)))
      for (const c of rounds2) expect(c.jobId).toEqual(beforeId)
      await expect(target.decide(jobId, value, 1000)).rejects.toMatchObject({
        code: 'VERIFIER_JOB',
        reason: 'round',
      })
    } finally {
      await Promise.all(members.map((m) => m.stop()))
    }
  }, 60_000)

  it('a second round on a node waits until the first stops (one PBFT handler per node)', async () => {
    const rounds = pbftRounds(nodes[0]!.libp2p)
    const params = {
      committee,
      domain,
      roundIds: [jobId],
      signer: keys[0]!,
      viewTimeoutMs: 3000,
    }
    const first = await rounds.open(params)
    let second: PbftRound | undefined
    const opening = rounds.open(params).then((r) => {
      second = r
    })
    await new Promise((r) => setTimeout(r, 300))
    expect(second).toBeUndefined()
    await first.stop()
    await opening
    expect(second).toBeDefined()
    await second?.stop()
  }, 30_000)
})
