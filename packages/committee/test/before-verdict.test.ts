/**
 * The before round on a real anvil (ADR 0033): `submitBeforeCertificate` records the
 * committee's pass (what a keyguard waits for) or certifies a fail; a certificate of another
 * round, job or verdict is refused; the before round's signatures never count as the final
 * certificate; equivocation within it is slashed through `reportBeforeEquivocation`.
 */
import { privateKeySigner, toHex } from '@digicap/capsule-core'
import { getBytes, hexlify, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BEFORE_FAIL,
  BEFORE_PASS,
  beforeCertificateCall,
  beforeRoundId,
  buildCertificate,
  certificateCall,
  equivocationCall,
  hubCommittee,
  pbftCommittee,
  pbftDomain,
  signVote,
} from '../src/index.ts'
import { type HubWorld, openJob, revertOf, STATUS, sent, startHubWorld } from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4], 5)
}, 120_000)
afterAll(() => w?.anvil.stop())

const BEFORE = { None: 0n, Pass: 1n, Fail: 2n }

function hub() {
  return w.hubs.get(4)!.hub
}

function domain() {
  return pbftDomain(w.chainId, w.hubs.get(4)!.hubAddress)
}

/** Commit votes of `signers` over `round` (a PBFT job id), built into a certificate. */
async function certify(
  round: Uint8Array,
  members: Wallet[],
  signers: Wallet[],
  verdict: number,
  evidence = getBytes(hexlify(randomBytes(32))),
) {
  const committee = pbftCommittee(
    members.map((m) => ({ address: m.address as `0x${string}`, peerId: `peer-${m.address}` })),
  )
  const votes = await Promise.all(
    signers.map(async (s) => ({
      signer: s.address as `0x${string}`,
      vote: await signVote(privateKeySigner(getBytes(s.privateKey)), domain(), {
        phase: 'commit',
        jobId: round,
        view: 0n,
        preparedView: 0n,
        verdict,
        evidenceHash: evidence,
      }),
    })),
  )
  return buildCertificate(domain(), committee, votes)
}

async function seated() {
  const members = w.verifiers.slice(0, 4)
  const { jobId, committee } = await openJob(w, 4, members)
  return { jobId, id: getBytes(jobId), members, committee: committee as `0x${string}`[] }
}

const submitBefore = (
  call: Omit<ReturnType<typeof beforeCertificateCall>, 'jobId' | 'value'> & {
    jobId: string
    value: { jobId: string; viewNumber: bigint; verdict: number; evidenceHash: string }
  },
) =>
  hub().submitBeforeCertificate(
    call.jobId,
    call.value,
    call.signerBits,
    call.others,
    call.signatures,
  )

describe('AttestationHub before round', () => {
  it('records a pass (the job stays open for its final certificate) and settles as usual', async () => {
    const { jobId, id, members, committee } = await seated()
    expect(toHex(beforeRoundId(id))).toBe(await hub().beforeRoundOf(jobId))
    const cert = await certify(beforeRoundId(id), members, members.slice(0, 3), BEFORE_PASS)
    await sent(submitBefore(beforeCertificateCall(id, cert, committee)))
    const job = await hub().jobs(jobId)
    expect([job.status, job.before]).toEqual([STATUS.Seated, BEFORE.Pass])
    // Once per job.
    expect(await revertOf(w, submitBefore(beforeCertificateCall(id, cert, committee)))).toBe(
      `BeforeVerdictExists(${jobId})`,
    )
    const final = certificateCall(await certify(id, members, members.slice(1), 7), committee)
    await sent(
      hub().submitCertificate(final.value, final.signerBits, final.others, final.signatures),
    )
    const after = await hub().jobs(jobId)
    expect([after.status, after.verdict, after.before]).toEqual([STATUS.Certified, 7n, BEFORE.Pass])
    await sent(hub().settle(jobId, hubCommittee(committee)))
  })

  it('certifies a fail as the job’s fail verdict: settle slashes the executor', async () => {
    const { jobId, id, members, committee } = await seated()
    const cert = await certify(beforeRoundId(id), members, members.slice(0, 3), BEFORE_FAIL)
    await sent(submitBefore(beforeCertificateCall(id, cert, committee)))
    const job = await hub().jobs(jobId)
    expect([job.status, job.verdict, job.before]).toEqual([STATUS.Certified, 0n, BEFORE.Fail])
    const stake = (await w.c.nodeRegistry.getNode(w.executor.address)).stake
    const r = await sent(hub().settle(jobId, hubCommittee(committee)))
    const settled = r.logs
      .map((l) => hub().interface.parseLog(l))
      .find((e) => e?.name === 'JobSettled')
    expect(settled?.args.passed).toBe(false)
    expect((await w.c.nodeRegistry.getNode(w.executor.address)).stake).toBeLessThan(stake)
    // Back above the minimum stake, for the next tests' grants.
    const nr = w.c.nodeRegistry.connect(w.executor) as typeof w.c.nodeRegistry
    await sent(nr.addStake({ value: stake }))
  })

  it('refuses another round, another job, a verdict above 1, an unseated job; final signatures never count', async () => {
    const { jobId, id, members, committee } = await seated()
    const other = await seated()
    // The final round's signatures (job id itself) as a before certificate.
    const finalCert = await certify(id, members, members.slice(0, 3), 1)
    const asBefore = { jobId, ...certificateCall(finalCert, committee) }
    expect(await revertOf(w, submitBefore(asBefore))).toBe(`NotBeforeRound(${jobId},${jobId})`)
    // The round id claimed, the final round's signatures: they sign another digest.
    expect(
      await revertOf(
        w,
        submitBefore({
          ...asBefore,
          value: { ...asBefore.value, jobId: toHex(beforeRoundId(id)) },
        }),
      ),
    ).toBe('NotTheCommittee()')
    // Another job's before certificate.
    const foreign = await certify(beforeRoundId(other.id), members, members.slice(0, 3), 1)
    const round = toHex(beforeRoundId(other.id))
    expect(await revertOf(w, submitBefore({ jobId, ...certificateCall(foreign, committee) }))).toBe(
      `NotBeforeRound(${jobId},${round})`,
    )
    // A verdict other than 0 / 1.
    const seven = await certify(beforeRoundId(id), members, members.slice(0, 3), 7)
    expect(await revertOf(w, submitBefore({ jobId, ...certificateCall(seven, committee) }))).toBe(
      'InvalidVerdict(7)',
    )
    expect(() => beforeCertificateCall(id, seven, committee)).toThrow(/0 \(fail\)/)
    expect(() => beforeCertificateCall(other.id, seven, committee)).toThrow(/before round/)
    // A before certificate is never the final one (its value names the round, not a job).
    const pass = await certify(beforeRoundId(id), members, members.slice(0, 3), BEFORE_PASS)
    const c = certificateCall(pass, committee)
    expect(
      await revertOf(w, hub().submitCertificate(c.value, c.signerBits, c.others, c.signatures)),
    ).toBe(`UnknownJob(${toHex(beforeRoundId(id))})`)
    // Not seated yet.
    const unseated = await openJob(w, 4, members, { seat: false })
    expect(
      await revertOf(
        w,
        submitBefore({ jobId: unseated.jobId, ...certificateCall(pass, committee) }),
      ),
    ).toBe(`CommitteeNotSeated(${unseated.jobId})`)
    expect((await hub().jobs(jobId)).before).toBe(BEFORE.None)
  })

  it('slashes a member that signs two before verdicts, only through reportBeforeEquivocation', async () => {
    const { jobId, id, members, committee } = await seated()
    const liar = members[2]!
    const vote = (verdict: number) =>
      signVote(privateKeySigner(getBytes(liar.privateKey)), domain(), {
        phase: 'commit',
        jobId: beforeRoundId(id),
        view: 0n,
        preparedView: 0n,
        verdict,
        evidenceHash: new Uint8Array(32),
      })
    const { a, b } = equivocationCall({ a: await vote(1), b: await vote(0) } as never)
    const sorted = hubCommittee(committee)
    // Over the job id the votes recover to two unrelated addresses.
    expect(await revertOf(w, hub().reportEquivocation(jobId, sorted, a, b))).toBe(
      'EquivocationSignature(1)',
    )
    const before = (await w.c.nodeRegistry.getNode(liar.address)).stake
    await sent(hub().reportBeforeEquivocation(jobId, sorted, a, b))
    expect((await w.c.nodeRegistry.getNode(liar.address)).stake).toBeLessThan(before)
    expect(await w.c.nodeRegistry.reputationOf(liar.address)).toBe(0n)
  })
})
