/**
 * Hostile input to the PBFT handler and replica: non-member peers, garbage, oversized frames,
 * votes signed by someone else, for another job, far out of view, and replays. Each is
 * dropped (counted), nothing throws into the host, and the honest members still decide.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { encodeFrame, encodePbftMessage, type PbftMessage } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { PbftVoteError, signVote, verifyCertificate } from '../src/index.ts'
import { signatureChecks } from '../src/pbft/signature-check.ts'
import {
  domain,
  evidenceHash,
  jobId,
  observedReplica,
  PASS,
  paperCommittee,
  pbftNetwork,
  rawSend,
  signers,
} from './pbft-fixtures.ts'

type Phase = 'pre-prepare' | 'prepare' | 'commit' | 'view-change'

const network = pbftNetwork()

describe('PBFT handler under hostile input', () => {
  it('drops non-members unread and bad member frames, then the honest members decide', async () => {
    const keys = signers(4)
    const { mesh, committee } = await network.mesh(keys)
    const outsider = await network.outsider()
    await outsider.dial((mesh[0] as Libp2p).getMultiaddrs())
    // Members 0, 2, 3 run; member 1's peer sends raw bytes only (it is the one fault).
    const target = await network.member(0)
    for (const i of [2, 3]) await network.member(i)
    const leader = mesh[0] as Libp2p
    const key1 = keys[1] as DigicapSigner
    const key2 = keys[2] as DigicapSigner
    const vote = { jobId, view: 0n, preparedView: 0n, ...PASS }
    const frame = async (signer: DigicapSigner, v: Parameters<typeof signVote>[2]) =>
      encodeFrame(
        encodePbftMessage({ vote: await signVote(signer, domain, v), proof: [] } as PbftMessage),
      )

    // A well-formed, correctly signed vote from a peer outside the committee.
    await rawSend(outsider, leader, await frame(key1, { phase: 'prepare', ...vote }))
    // Garbage, an oversized length prefix, a truncated frame.
    await rawSend(mesh[1] as Libp2p, leader, Uint8Array.from([0x05, 1, 2, 3, 4, 5]))
    await rawSend(mesh[1] as Libp2p, leader, Uint8Array.from([0xff, 0xff, 0x7f]))
    await rawSend(mesh[1] as Libp2p, leader, Uint8Array.from([0x40, 1, 2]))
    // Member 2's signature sent from member 1's peer; another job; far out of view.
    await rawSend(mesh[1] as Libp2p, leader, await frame(key2, { phase: 'commit', ...vote }))
    await rawSend(
      mesh[1] as Libp2p,
      leader,
      await frame(key1, { phase: 'commit', ...vote, jobId: evidenceHash }),
    )
    await rawSend(
      mesh[1] as Libp2p,
      leader,
      await frame(key1, { phase: 'commit', ...vote, view: 1000n }),
    )

    await expect.poll(() => target.transport.stats.nonMember, { timeout: 10_000 }).toBe(1)
    await expect
      .poll(() => target.transport.stats.rejected, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(5)
    for (const cert of await network.decide()) {
      expect(cert.view).toBe(0n)
      verifyCertificate(cert, committee, { domain, jobId })
    }
  })
})

describe('PbftReplica', () => {
  const keys = signers(4)
  const committee = paperCommittee(keys)
  const member = (i: number) => committee.members[i] as (typeof committee.members)[number]

  const leader = async () => {
    /** Messages to every member. */
    const sent: PbftMessage[] = []
    /** Messages to one member (answers to a re-sent vote, ADR 0054). */
    const answered: { to: string; phase: string }[] = []
    const { r: replica } = await observedReplica(
      {
        committee,
        signer: keys[0] as DigicapSigner,
        send: (to, m) =>
          to === undefined ? sent.push(m) : answered.push({ to: to.address, phase: m.vote.phase }),
      },
      keys,
    )
    return { replica, sent, answered }
  }
  /** `phase` of PASS for view `view`, signed by member i. */
  const vote = (i: number, phase: Phase, view = 0n) =>
    signVote(keys[i] as DigicapSigner, domain, { phase, jobId, view, preparedView: 0n, ...PASS })

  it('a replayed prepare counts once: no commit until a second member prepares', async () => {
    const { replica, sent, answered } = await leader()
    await replica.start()
    const prepare = await vote(1, 'prepare')
    await replica.receive(member(1), { vote: prepare, proof: [] })
    for (let i = 0; i < 2; i++)
      await expect(replica.receive(member(1), { vote: prepare, proof: [] })).rejects.toMatchObject({
        code: 'PBFT_VOTE',
        reason: 'replayed',
      })
    expect(sent.map((m) => m.vote.phase)).toEqual(['observation', 'pre-prepare', 'prepare'])
    // Not answered: an undecided member re-sends its votes on its own timer (ADR 0054).
    expect(answered).toEqual([])
    const other = await vote(2, 'prepare')
    await replica.receive(member(2), { vote: other, proof: [] })
    expect(sent.map((m) => m.vote.phase)).toEqual([
      'observation',
      'pre-prepare',
      'prepare',
      'commit',
    ])
    replica.stop()
  })

  it('a member that decided answers a re-sent vote with its own votes of that view, once per interval', async () => {
    const { replica, answered } = await leader()
    await replica.start()
    for (const phase of ['prepare', 'commit'] as const) {
      for (const i of [1, 2])
        await replica.receive(member(i), { vote: await vote(i, phase), proof: [] })
    }
    expect(replica.certificate).toBeDefined()
    // Member 1 re-sends its commit twice: it may lack this member's votes (ADR 0054).
    const commit = await vote(1, 'commit')
    for (let i = 0; i < 2; i++) {
      await expect(replica.receive(member(1), { vote: commit, proof: [] })).rejects.toMatchObject({
        reason: 'replayed',
      })
    }
    const to = member(1).address
    // Its observation with them (ADR 0087).
    expect(answered).toEqual(
      ['observation', 'pre-prepare', 'prepare', 'commit'].map((phase) => ({ to, phase })),
    )
    replica.stop()
  })

  it('refuses a pre-prepare from a member that does not lead the view, and a new view without 2f+1 view changes', async () => {
    const { replica } = await leader()
    const notLeader = await vote(2, 'pre-prepare')
    await expect(replica.receive(member(2), { vote: notLeader, proof: [] })).rejects.toMatchObject({
      reason: 'not-leader',
    })
    const bare = await vote(1, 'pre-prepare', 1n)
    await expect(replica.receive(member(1), { vote: bare, proof: [] })).rejects.toBeInstanceOf(
      PbftVoteError,
    )
    replica.stop()
  })

  it('drops a copy of a new view as replayed before its view changes are checked (ADR 0054)', async () => {
    const { replica } = await leader()
    await replica.start()
    const viewChanges = await Promise.all(
      [1, 2, 3].map((i) =>
        signVote(keys[i] as DigicapSigner, domain, {
          phase: 'view-change',
          jobId,
          view: 1n,
          preparedView: 0n,
          verdict: 0,
          evidenceHash: new Uint8Array(32),
        }),
      ),
    )
    const newView = await signVote(keys[1] as DigicapSigner, domain, {
      phase: 'pre-prepare',
      jobId,
      view: 1n,
      preparedView: 0n,
      ...PASS,
    })
    await replica.receive(member(1), { vote: newView, proof: viewChanges })
    expect(replica.view).toBe(1n)
    // The same signed vote without its proof: a copy, not a new view lacking 2f+1 view changes.
    await expect(replica.receive(member(1), { vote: newView, proof: [] })).rejects.toMatchObject({
      reason: 'replayed',
    })
    replica.stop()
  })

  it('refuses a view change that claims a prepared value without 2f+1 prepares', async () => {
    const { replica } = await leader()
    const vc = await signVote(keys[3] as DigicapSigner, domain, {
      phase: 'view-change',
      jobId,
      view: 1n,
      preparedView: 1n,
      verdict: 0,
      evidenceHash,
    })
    await expect(replica.receive(member(3), { vote: vc, proof: [] })).rejects.toMatchObject({
      reason: 'proof',
    })
    replica.stop()
  })

  it('refuses a prepared proof past 2f+1 entries or at its first bad entry, and its sender’s later proofs unchecked (ADR 0088)', async () => {
    const claim = (i: number, view: bigint) =>
      signVote(keys[i] as DigicapSigner, domain, {
        phase: 'view-change',
        jobId,
        view,
        preparedView: 1n,
        ...PASS,
      })
    const prepares = await Promise.all([0, 1, 2, 3].map((i) => vote(i, 'prepare')))
    const outsider = await signVote(signers(5)[4] as DigicapSigner, domain, {
      phase: 'prepare',
      jobId,
      view: 0n,
      preparedView: 0n,
      ...PASS,
    })
    // 2f + 2 good prepares: refused on its length, only the view change's own signature checked.
    const a = (await leader()).replica
    let before = signatureChecks()
    await expect(
      a.receive(member(3), { vote: await claim(3, 1n), proof: prepares }),
    ).rejects.toMatchObject({ reason: 'proof' })
    expect(signatureChecks() - before).toBeLessThanOrEqual(1)
    a.stop()
    // An outsider's prepare first: refused there, the entries after it never checked.
    const b = (await leader()).replica
    before = signatureChecks()
    await expect(
      b.receive(member(3), {
        vote: await claim(3, 1n),
        proof: [outsider, prepares[0], prepares[1]] as never,
      }),
    ).rejects.toMatchObject({ reason: 'proof' })
    expect(signatureChecks() - before).toBeLessThanOrEqual(2)
    // Caught once: its next view change, with a proof that holds, is refused unchecked.
    const good = { vote: await claim(3, 2n), proof: prepares.slice(0, 3) }
    before = signatureChecks()
    await expect(b.receive(member(3), good)).rejects.toMatchObject({ reason: 'proof' })
    expect(signatureChecks() - before).toBe(0)
    // Another member's view change with the same proof holds.
    await b.receive(member(2), { vote: await claim(2, 2n), proof: prepares.slice(0, 3) })
    b.stop()
  })
})
