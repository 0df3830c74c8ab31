/**
 * Every PBFT message handler — pre-prepare, prepare, commit, view change — under malformed,
 * oversized, replayed and out-of-view input: each refusal is a typed error (the replica's
 * `PbftVoteError` with its reason, or the wire error of a frame that does not read), the
 * replica's state is unchanged, and nothing throws into the host: afterwards the honest members
 * still decide.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { encodeFrame, encodePbftMessage, PBFT_MAX_FRAME } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import {
  MAX_VIEWS_AHEAD,
  type PbftSignatureCheck,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import {
  domain,
  evidenceHash,
  FAIL,
  jobId,
  observedReplica,
  PASS,
  paperCommittee,
  pbftNetwork,
  rawSend,
  signers,
} from './pbft-fixtures.ts'

type Phase = 'pre-prepare' | 'prepare' | 'commit' | 'view-change'
const PHASES: Phase[] = ['pre-prepare', 'prepare', 'commit', 'view-change']

const keys = signers(4)
const key = (i: number) => keys[i] as DigicapSigner

const vote = (i: number, phase: Phase, view = 0n, value = PASS) =>
  signVote(key(i), domain, { phase, jobId, view, preparedView: 0n, ...value })

/** The member that may send `phase` in view 0 of the paper committee (the leader for a pre-prepare). */
const senderOf = (phase: Phase) => (phase === 'pre-prepare' ? 0 : 2)

describe('PbftReplica: each handler refuses with a typed error and keeps its state', () => {
  const committee = paperCommittee(keys)
  const member = (i: number) => committee.members[i] as (typeof committee.members)[number]

  /** Member 1's replica (not the view-0 leader), recording what it sends and the proofs it reports. */
  const replica = (signatureCheck: PbftSignatureCheck = 'before-use') =>
    observedReplica({ committee, signer: key(1), signatureCheck }, keys)

  for (const [phase, check] of PHASES.flatMap((p) =>
    (['on-arrival', 'before-use'] as const).map((c) => [p, c] as const),
  )) {
    it(`${phase} (${check}): replayed, out of view, malformed signature, other job, another sender`, async () => {
      const { r } = await replica(check)
      const from = senderOf(phase)
      const first = await vote(from, phase, phase === 'view-change' ? 1n : 0n)
      await r.receive(member(from), { vote: first, proof: [] })
      await expect(r.receive(member(from), { vote: first, proof: [] })).rejects.toMatchObject({
        code: 'PBFT_VOTE',
        reason: 'replayed',
      })
      const ahead = await vote(from, phase, MAX_VIEWS_AHEAD + 1n)
      await expect(r.receive(member(from), { vote: ahead, proof: [] })).rejects.toMatchObject({
        reason: 'out-of-view',
      })
      const forged = { ...first, signature: new Uint8Array(65).fill(7) }
      await expect(r.receive(member(from), { vote: forged, proof: [] })).rejects.toMatchObject({
        reason: 'signature',
      })
      const other = await signVote(key(from), domain, {
        phase,
        jobId: evidenceHash,
        view: 0n,
        preparedView: 0n,
        ...PASS,
      })
      await expect(r.receive(member(from), { vote: other, proof: [] })).rejects.toMatchObject({
        reason: 'wrong-job',
      })
      // Signed by one member, sent by another's connection: refused on arrival, or (checked
      // before use, ADR 0047) counted as the sender's vote until it is used; a pre-prepare still
      // comes from its view's leader only.
      const relayed = r.receive(member(3), { vote: first, proof: [] })
      if (check === 'on-arrival' || phase === 'view-change') {
        await expect(relayed).rejects.toMatchObject({ reason: 'signature' })
      } else if (phase === 'pre-prepare') {
        await expect(relayed).rejects.toMatchObject({ reason: 'not-leader' })
      } else {
        await expect(relayed).resolves.toBeUndefined()
      }
      r.stop()
    })
  }

  it('a second, different vote in a slot is refused as equivocation (the first kept, the pair reported)', async () => {
    const { r, sent, proofs } = await replica()
    await r.receive(member(0), { vote: await vote(0, 'pre-prepare'), proof: [] })
    await r.receive(member(2), { vote: await vote(2, 'prepare'), proof: [] })
    await expect(
      r.receive(member(2), { vote: await vote(2, 'prepare', 0n, FAIL), proof: [] }),
    ).rejects.toMatchObject({ reason: 'equivocation' })
    expect(proofs).toHaveLength(1)
    // The first prepare still counts: with member 3's, member 1 (itself the third) commits.
    await r.receive(member(3), { vote: await vote(3, 'prepare'), proof: [] })
    expect(sent.map((m) => m.vote.phase)).toEqual(['prepare', 'commit'])
    r.stop()
  })

  it('a pre-prepare for a view the replica has left is out of view', async () => {
    const { r } = await replica()
    // Three view changes to view 1: member 1 joins and moves there.
    for (const i of [0, 2, 3])
      await r.receive(member(i), { vote: await vote(i, 'view-change', 1n), proof: [] })
    await expect(
      r.receive(member(0), { vote: await vote(0, 'pre-prepare', 0n), proof: [] }),
    ).rejects.toMatchObject({ reason: 'out-of-view' })
    r.stop()
  })
})

const network = pbftNetwork()

describe('the /digicap/pbft/1.0.0 handler on real libp2p nodes', () => {
  it('reports each hostile frame of a member with its typed error, and the members still decide', async () => {
    const { mesh, committee } = await network.mesh(keys)
    const rejected: { code: string | undefined; reason: string | undefined }[] = []
    const onRejected = (err: unknown) =>
      rejected.push({
        code: (err as { code?: string }).code,
        reason: (err as { details?: { reason?: string } }).details?.reason,
      })
    const target = await network.member(0, { transport: { onRejected } })
    for (const i of [2, 3]) await network.member(i)
    const leader = mesh[0] as Libp2p
    const faulty = mesh[1] as Libp2p
    const frame = async (phase: Phase, view: bigint) =>
      encodeFrame(encodePbftMessage({ vote: await vote(1, phase, view), proof: [] }))

    // Malformed (a frame whose body is no PBFT message), oversized (a length prefix above the
    // cap), truncated (the stream ends inside the body).
    await rawSend(faulty, leader, Uint8Array.from([0x05, 1, 2, 3, 4, 5]))
    await rawSend(faulty, leader, encodeFrame(new Uint8Array(PBFT_MAX_FRAME + 1)))
    await rawSend(faulty, leader, Uint8Array.from([0x40, 1, 2]))
    // Per handler: out of view, and replayed (the same signed vote twice).
    for (const phase of PHASES) await rawSend(faulty, leader, await frame(phase, 1000n))
    for (const phase of ['prepare', 'commit', 'view-change'] as const) {
      const f = await frame(phase, phase === 'view-change' ? 1n : 0n)
      await rawSend(faulty, leader, f)
      await rawSend(faulty, leader, f)
    }
    const expected = {
      'WIRE_FORMAT:cbor': 1,
      WIRE_TOO_LARGE: 1,
      WIRE_TRUNCATED: 1,
      'PBFT_VOTE:out-of-view': 4,
      'PBFT_VOTE:replayed': 3,
    }
    await expect
      .poll(() => target.transport.stats.refused, { timeout: 15_000 })
      .toMatchObject(expected)
    expect(rejected.filter((r) => r.code === 'PBFT_VOTE' && r.reason === 'replayed')).toHaveLength(
      3,
    )
    for (const cert of await network.decide()) {
      verifyCertificate(cert, committee, { domain, jobId })
    }
  })
})
