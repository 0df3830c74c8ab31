/**
 * ADR 0093: every vote a replica signs goes through its signed-vote record. A replica re-created
 * on the same record (a restarted member) never signs a second, different vote for a slot it
 * signed: the observation it signed stands, the same vote is re-sent with the stored signature
 * (the signer is not asked again), and a closed round gets nothing. The record here is the
 * in-memory one; the data folder's file is `@digicap/executor`'s (its own tests).
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import type { PbftMessage, PbftVote } from '@digicap/protocol'
import { describe, expect, it } from 'vitest'
import {
  beforeRoundId,
  conflicting,
  memorySignedVotes,
  type PbftSignedVotes,
  SignedVoteBook,
  type SignedVoteChange,
  SignedVoteError,
  signedVotesOfJob,
} from '../src/index.ts'
import {
  FAIL,
  jobId,
  observedReplica,
  PASS,
  paperCommittee,
  recordingReplica,
  signers,
} from './pbft-fixtures.ts'

const keys = signers(4)
const committee = paperCommittee(keys)
/** Member 1: not view 0's leader (only its observation is signed at start). */
const me = keys[1] as DigicapSigner
/** Member 0: view 0's leader. */
const leader = keys[0] as DigicapSigner

/** `me`, counting what its key is asked to sign. */
function counted(): { signer: DigicapSigner; asked: () => number } {
  let n = 0
  const signer: DigicapSigner = {
    address: me.address,
    signTypedData: (typedData) => {
      n++
      return me.signTypedData(typedData)
    },
  }
  return { signer, asked: () => n }
}

/** One life of the member: a replica started with `value` on `record`; what it sent. */
async function life(
  record: PbftSignedVotes,
  value: typeof PASS,
  signer: DigicapSigner = me,
): Promise<PbftMessage[]> {
  const { r, sent } = recordingReplica({ committee, signer, value, signedVotes: record })
  try {
    await r.start()
  } finally {
    r.stop()
  }
  return sent
}

const observations = (sent: PbftMessage[]) =>
  sent.map((m) => m.vote).filter((v) => v.phase === 'observation')

/** Pairs of votes in `votes` that the hub would take as an equivocation. */
function conflicts(votes: PbftVote[]): [PbftVote, PbftVote][] {
  const out: [PbftVote, PbftVote][] = []
  for (const [i, a] of votes.entries())
    for (const b of votes.slice(i + 1)) if (conflicting(a, b)) out.push([a, b])
  return out
}

describe('a replica restarted on its signed-vote record (ADR 0093)', () => {
  it('does not sign another observation for the round: the first one stands', async () => {
    const record = memorySignedVotes(me.address)
    const first = observations(await life(record, PASS))
    expect(first).toHaveLength(1)
    // The restarted member saw the run otherwise (it got the quote this time).
    const second = observations(await life(record, FAIL))
    expect(conflicts([...first, ...second])).toEqual([])
    expect(second).toEqual([])
  })

  it('a leader restarted with other observations proposes nothing new, and goes on', async () => {
    const record = memorySignedVotes(leader.address)
    const sent: PbftMessage[] = []
    for (const value of [PASS, FAIL]) {
      // Its first life saw PASS from everyone, its second FAIL (as if the run went otherwise).
      const { r, sent: out } = await observedReplica(
        { committee, signer: leader, value, signedVotes: record },
        keys,
      )
      await expect(r.start()).resolves.toBeUndefined()
      r.stop()
      sent.push(...out)
    }
    const votes = sent.map((m) => m.vote)
    // The first life's proposal only: the second one's (FAIL) is refused, not sent.
    expect(votes.filter((v) => v.phase === 'pre-prepare')).toEqual([
      expect.objectContaining({ verdict: PASS.verdict }),
    ])
    expect(conflicts(votes)).toEqual([])
  })

  it('re-sends the same vote with the stored signature, without asking its key again', async () => {
    const record = memorySignedVotes(me.address)
    const { signer, asked } = counted()
    const [first] = observations(await life(record, PASS, signer))
    const [again] = observations(await life(record, PASS, signer))
    expect(again).toEqual(first)
    expect(asked()).toBe(1)
  })

  it('signs nothing more for a round closed in the record (its job settled)', async () => {
    const record = memorySignedVotes(me.address)
    await life(record, PASS)
    await record.close([jobId])
    const { r, sent } = recordingReplica({ committee, signer: me, signedVotes: record })
    const refused = await r.start().then(
      () => undefined,
      (err: unknown) => err,
    )
    r.stop()
    expect(refused).toBeInstanceOf(SignedVoteError)
    expect(refused).toMatchObject({ reason: 'closed', code: 'PBFT_SIGNED_VOTE' })
    expect(sent).toEqual([])
  })

  it("refuses to sign with another member's record", async () => {
    const record = memorySignedVotes(keys[2]!.address)
    const { r, sent } = recordingReplica({ committee, signer: me, signedVotes: record })
    await expect(r.start()).rejects.toMatchObject({ reason: 'identity' })
    r.stop()
    expect(sent).toEqual([])
  })

  it("keeps each slot's job (a before round names its job), and appends one change per step", async () => {
    const changes: SignedVoteChange[] = []
    const record = new SignedVoteBook(
      { signer: me.address, entries: [], closed: [] },
      {
        persist: async () => {
          throw new Error('not called with append')
        },
        append: async (c) => {
          changes.push(c)
        },
      },
    )
    const before = beforeRoundId(jobId)
    const { r } = recordingReplica({
      committee,
      signer: me,
      value: PASS,
      jobId: before,
      signedVotes: signedVotesOfJob(record, jobId),
    })
    await r.start()
    r.stop()
    const job = `0x${Buffer.from(jobId).toString('hex')}`
    expect(record.openJobs()).toEqual([job])
    // The digest, then the same entry with its signature: each a change of its own.
    expect(changes.map((c) => (c.op === 'slot' ? c.entry.signature !== undefined : c.op))).toEqual([
      false,
      true,
    ])
    expect(changes.every((c) => c.op === 'slot' && c.entry.job === job)).toBe(true)
    await record.close([before, jobId])
    expect(record.openJobs()).toEqual([])
    expect(changes.at(-1)).toEqual({
      op: 'close',
      rounds: [`0x${Buffer.from(before).toString('hex')}`, job],
    })
  })
})
