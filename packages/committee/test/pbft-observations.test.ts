/**
 * ADR 0087: the committee decides each phase from the members' signed observations. The executor
 * chooses which members get an answer to each phase challenge; whatever it chooses, the honest
 * members decide (a phase missed by f + 1 or more fails, by f or fewer passes), and f lying
 * members cannot fail a phase whose answer reached every honest member.
 *
 * The agreement runs on real libp2p nodes on loopback; the lying members' votes are fed to one
 * replica directly (fault injection: what a Byzantine member could send).
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import type { PbftMessage } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { afterEach, describe, expect, it } from 'vitest'
import {
  equivocationCall,
  type PbftDecision,
  type PbftReplica,
  signVote,
  verifyEquivocation,
} from '../src/index.ts'
import {
  domain,
  jobId,
  paperCommittee,
  pbftNetwork,
  recordingReplica,
  signers,
} from './pbft-fixtures.ts'

/** A member's statement hash for a verdict (every member builds the same for one run). */
const evidence = (verdict: number) => keccak_256(new TextEncoder().encode(`statement-${verdict}`))
const statement = (verdict: number) => ({ verdict, evidenceHash: evidence(verdict) })

const net = pbftNetwork()

/** Runs one committee whose member i saw `seen[i]`; resolves with every member's decision. */
async function decide(seen: number[]): Promise<PbftDecision[]> {
  await net.mesh(signers(seen.length))
  const members = await Promise.all(
    seen.map((verdict, i) =>
      net.member(i, { value: statement(verdict), evidence, viewTimeout: 2_000 }),
    ),
  )
  await Promise.all(members.map((m) => m.start()))
  return Promise.all(members.map((m) => m.replica.verdict))
}

describe('ADR 0087: a verdict whichever members the executor answers (4 honest members, f = 1)', () => {
  // [what each member saw, the verdict]: bit 1 before, 2 during, 4 after; a clear bit = missed.
  const cases: [string, number[], number][] = [
    ['the during quote withheld from one member: within f, the phase passes', [7, 7, 7, 5], 7],
    ['withheld from two (f + 1): the phase fails', [7, 7, 5, 5], 5],
    ['withheld from three: the phase fails', [7, 5, 5, 5], 5],
    [
      'a failed after phase shown to two, the during quote withheld from the others',
      [3, 3, 5, 5],
      1,
    ],
    ['during withheld from two, after from the other two: both fail', [5, 5, 3, 3], 1],
    ['each phase withheld from a different single member: all pass', [6, 5, 3, 7], 7],
    ['before withheld from two, during and after from one each', [6, 6, 5, 3], 6],
  ]
  for (const [name, seen, verdict] of cases) {
    it(`${name}: ${JSON.stringify(seen)} → ${verdict}`, async () => {
      const decisions = await decide(seen)
      for (const d of decisions) {
        expect(d.verdict).toBe(verdict)
        expect(d.evidenceHash).toEqual(evidence(verdict))
      }
    }, 60_000)
  }

  it('7 members (f = 2): withheld from 2 passes, from 3 fails', async () => {
    expect((await decide([7, 7, 7, 7, 7, 5, 5]))[0]?.verdict).toBe(7)
    expect((await decide([7, 7, 7, 7, 5, 5, 5]))[0]?.verdict).toBe(5)
  }, 120_000)
})

describe('ADR 0087: f lying members cannot fail an executor whose answers reached every honest member', () => {
  const replicas: PbftReplica[] = []
  afterEach(() => {
    for (const r of replicas.splice(0)) r.stop()
  })

  /** Member `self`'s replica of an n-member committee; it saw the whole run unless told. */
  async function honest(n: number, self: number, saw = 7) {
    const keys = signers(n)
    const committee = paperCommittee(keys)
    const rec = recordingReplica({
      committee,
      signer: keys[self] as DigicapSigner,
      value: statement(saw),
      evidence,
    })
    replicas.push(rec.r)
    await rec.r.start()
    const member = (i: number) => committee.members[i] as (typeof committee.members)[number]
    const sign = (i: number, phase: 'observation' | 'pre-prepare', verdict: number, view = 0n) =>
      signVote(keys[i] as DigicapSigner, domain, {
        phase,
        jobId,
        view,
        preparedView: 0n,
        ...statement(verdict),
      })
    const observe = async (i: number, verdict: number) => {
      const vote = await sign(i, 'observation', verdict)
      await rec.r.receive(member(i), { vote, proof: [] })
      return vote
    }
    const prepared = (verdict: number) =>
      rec.sent.some((m: PbftMessage) => m.vote.phase === 'prepare' && m.vote.verdict === verdict)
    return { ...rec, member, sign, observe, prepared }
  }

  it('n = 4: the view-0 leader claims the during quote missed and proposes a fail; no honest prepare', async () => {
    const h = await honest(4, 1)
    // The liar's observation, then every honest one: during has one fail claim (< f + 1).
    const lie = await h.observe(0, 5)
    const honestOnes = [await h.observe(2, 7), await h.observe(3, 7)]
    const proposal = await h.sign(0, 'pre-prepare', 5)
    await h.r.receive(h.member(0), { vote: proposal, proof: [lie, ...honestOnes] })
    expect(h.prepared(5)).toBe(false)
    // The same liar proposing the pass the observations justify gets this member's prepare.
    const h2 = await honest(4, 1)
    const again = [await h2.observe(0, 5), await h2.observe(2, 7), await h2.observe(3, 7)]
    await h2.r.receive(h2.member(0), { vote: await h2.sign(0, 'pre-prepare', 7), proof: again })
    expect(h2.prepared(7)).toBe(true)
  })

  it('n = 7: two liars claiming the after phase failed, one of them leading, cannot get a prepare', async () => {
    const h = await honest(7, 2)
    const lies = [await h.observe(0, 3), await h.observe(1, 3)]
    const proposal = await h.sign(0, 'pre-prepare', 3)
    await h.r.receive(h.member(0), { vote: proposal, proof: lies })
    for (const i of [3, 4, 5, 6]) await h.observe(i, 7)
    expect(h.prepared(3)).toBe(false)
  })

  it('a leader that leaves out the fail claims cannot pass the phase: a pass needs 2f + 1 signed passes', async () => {
    // Member 2 missed the during quote, and so did member 3; the liar (0) and member 1 saw it.
    const h = await honest(4, 2, 5)
    await h.observe(3, 5)
    const shown = [await h.sign(0, 'observation', 7), await h.sign(1, 'observation', 7)]
    await h.r.receive(h.member(0), { vote: await h.sign(0, 'pre-prepare', 7), proof: shown })
    expect(h.prepared(7)).toBe(false)
  })

  it('the trade-off: one liar and one honest member that lost the executor fail the phase (f + 1 claims)', async () => {
    const h = await honest(4, 1)
    const obs = [await h.observe(0, 5), await h.observe(2, 5), await h.observe(3, 7)]
    await h.r.receive(h.member(0), { vote: await h.sign(0, 'pre-prepare', 5), proof: obs })
    expect(h.prepared(5)).toBe(true)
  })

  it('a member has one observation: a second, different one is refused, the first still counts', async () => {
    const h = await honest(4, 1)
    await h.observe(0, 7)
    const second = await h.sign(0, 'observation', 5)
    await expect(h.r.receive(h.member(0), { vote: second, proof: [] })).rejects.toMatchObject({
      reason: 'equivocation',
    })
    // Nor does a copy carried in a pre-prepare replace it.
    await h.observe(2, 5)
    const proposal = await h.sign(0, 'pre-prepare', 5)
    await h.r.receive(h.member(0), { vote: proposal, proof: [second] })
    expect(h.prepared(5)).toBe(false)
  })

  it('ADR 0092: a second, different observation is an equivocation proof, handed on once and valid for the hub', async () => {
    const h = await honest(4, 1)
    const first = await h.observe(0, 7)
    const second = await h.sign(0, 'observation', 5)
    await expect(h.r.receive(h.member(0), { vote: second, proof: [] })).rejects.toMatchObject({
      reason: 'equivocation',
    })
    expect(h.proofs).toEqual([{ member: h.member(0).address, a: first, b: second }])
    const proof = h.proofs[0]!
    verifyEquivocation(proof, domain, paperCommittee(signers(4)))
    expect(equivocationCall(proof).b.phase).toBe(3)
    // A third one, sent or carried, is dropped without another proof (one check a member).
    const third = await h.sign(0, 'observation', 3)
    await expect(h.r.receive(h.member(0), { vote: third, proof: [] })).rejects.toMatchObject({
      reason: 'equivocation',
    })
    await h.r.receive(h.member(0), { vote: await h.sign(0, 'pre-prepare', 5), proof: [third] })
    expect(h.proofs).toHaveLength(1)
    // Carried in another member's pre-prepare, a second observation of a member is caught too.
    const g = await honest(4, 2)
    const held = await g.observe(3, 7)
    const carried = await g.sign(3, 'observation', 6)
    await g.r.receive(g.member(0), { vote: await g.sign(0, 'pre-prepare', 6), proof: [carried] })
    expect(g.proofs).toEqual([{ member: g.member(3).address, a: held, b: carried }])
  })

  it('a proposal arriving before the observations that justify it is prepared once they come', async () => {
    const h = await honest(4, 1)
    const liar = await h.sign(0, 'observation', 5)
    const lost = await h.sign(2, 'observation', 5)
    await h.r.receive(h.member(0), { vote: await h.sign(0, 'pre-prepare', 5), proof: [] })
    expect(h.prepared(5)).toBe(false)
    await h.r.receive(h.member(0), { vote: liar, proof: [] })
    expect(h.prepared(5)).toBe(false)
    await h.r.receive(h.member(2), { vote: lost, proof: [] })
    expect(h.prepared(5)).toBe(true)
  })
})
