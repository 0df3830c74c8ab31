/**
 * ADR 0053: deciding and certifying are apart. `verdict` resolves at 2f + 1 counted commits (no
 * signature checked); the certificate, 2f + 1 commits whose signatures hold, is built by the
 * member that asks for it (`certify()`, `certificate: 'on-request'`) or by every member
 * (`at-decision`, the default). A member's own prepare and commit are checked before use, not
 * when signed: so a member that only decides checks no signature at all.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import type { PbftVote } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import {
  type PbftCertificateMode,
  PbftReplica,
  type PbftVoteError,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import { signatureChecks } from '../src/pbft/signature-check.ts'
import { domain, PASS, paperCommittee, signers } from './pbft-fixtures.ts'

type Phase = 'pre-prepare' | 'prepare' | 'commit' | 'observation'

const keys = signers(4)
const key = (i: number) => keys[i] as DigicapSigner
const committee = paperCommittee(keys)
const member = (i: number) => committee.members[i] as (typeof committee.members)[number]
/** A job id per test: answered signatures are cached per process, and must not carry over. */
let jobs = 0
const freshJob = () => keccak_256(new TextEncoder().encode(`certify-job-${jobs++}`))

/** Member `at`'s replica for `job`, recording what it sends and reports. */
function replica(job: Uint8Array, certificate: PbftCertificateMode, signer = key(1)) {
  const sent: Phase[] = []
  const faults: PbftVoteError[] = []
  const r = new PbftReplica({
    domain,
    committee,
    jobId: job,
    signer,
    value: PASS,
    certificate,
    send: (_to, m) => sent.push(m.vote.phase as Phase),
    onFault: (e) => faults.push(e),
    viewTimeout: 60_000,
  })
  return { r, sent, faults }
}

/** Signed unchecked: a check here would put the answer in the cache the replica reads. */
const vote = (job: Uint8Array, by: number, phase: Phase) =>
  signVote(
    key(by),
    domain,
    { phase, jobId: job, view: 0n, preparedView: 0n, ...PASS },
    { check: false },
  )

/**
 * Member 1 (not the leader) gets the others' observations of PASS (ADR 0087), the pre-prepare
 * and members 2 and 3's prepares: it commits.
 */
async function prepared(r: PbftReplica, job: Uint8Array): Promise<void> {
  for (const i of [0, 2, 3])
    await r.receive(member(i), { vote: await vote(job, i, 'observation'), proof: [] })
  await r.receive(member(0), { vote: await vote(job, 0, 'pre-prepare'), proof: [] })
  for (const i of [2, 3])
    await r.receive(member(i), { vote: await vote(job, i, 'prepare'), proof: [] })
}

describe('PbftReplica: the verdict on counted commits, the certificate on request', () => {
  it('decides on 2f + 1 counted commits and checks nothing; certify() checks and drops a bad one', async () => {
    const job = freshJob()
    const { r, sent, faults } = replica(job, 'on-request')
    await prepared(r, job)
    expect(sent).toEqual(['prepare', 'commit'])
    // Member 3's stream sends a commit signed with member 2's key; member 0's is good.
    const bad = await vote(job, 2, 'commit')
    const good = await vote(job, 0, 'commit')
    const before = signatureChecks()
    await r.receive(member(3), { vote: bad, proof: [] })
    await r.receive(member(0), { vote: good, proof: [] })
    await expect(r.verdict).resolves.toEqual({ view: 0n, ...PASS })
    // Deciding checked no signature, its own included.
    expect(signatureChecks() - before).toBe(0)
    expect(faults).toHaveLength(0)
    expect(r.certificate).toBeUndefined()
    // The submitter asks: member 3's commit fails its check and is reported; the certificate
    // waits for a third good commit.
    const certified = r.certify()
    // Its own commit, member 3's and member 0's: three checks.
    expect(signatureChecks() - before).toBe(3)
    expect(faults.map((f) => f.details)).toMatchObject([
      { signer: member(3).address, phase: 'commit' },
    ])
    expect(r.certificate).toBeUndefined()
    await r.receive(member(2), { vote: await vote(job, 2, 'commit'), proof: [] })
    const certificate = await certified
    verifyCertificate(certificate, committee, { domain, jobId: job })
    expect(new Set(certificate.signers)).toEqual(new Set([0, 1, 2].map((i) => member(i).address)))
    r.stop()
  })

  it('a certificate asked for before the decision is built at it, with 2f + 1 checks', async () => {
    const job = freshJob()
    const { r, faults } = replica(job, 'on-request')
    const certified = r.certify()
    await prepared(r, job)
    const commits = [await vote(job, 0, 'commit'), await vote(job, 2, 'commit')]
    const before = signatureChecks()
    await r.receive(member(0), { vote: commits[0] as PbftVote, proof: [] })
    await r.receive(member(2), { vote: commits[1] as PbftVote, proof: [] })
    const certificate = await certified
    // Its own commit and two others: 2f + 1 checks, and not one for a prepare.
    expect(signatureChecks() - before).toBe(committee.quorum)
    expect(faults).toHaveLength(0)
    verifyCertificate(certificate, committee, { domain, jobId: job })
    expect((await r.verdict).view).toBe(0n)
    r.stop()
  })

  it('at-decision (the default) builds the certificate when it decides, as before', async () => {
    const job = freshJob()
    const { r } = replica(job, 'at-decision')
    await prepared(r, job)
    for (const i of [0, 2])
      await r.receive(member(i), { vote: await vote(job, i, 'commit'), proof: [] })
    expect(r.certificate).toBeDefined()
    verifyCertificate(await r.decided, committee, { domain, jobId: job })
    r.stop()
  })

  it('a member whose signer answers for another account: its own votes are caught before use', async () => {
    const job = freshJob()
    // Member 1's signer names member 1's address but signs with member 2's key.
    const lying: DigicapSigner = {
      address: key(1).address,
      signTypedData: (typedData) => key(2).signTypedData(typedData),
    }
    const { r, sent, faults } = replica(job, 'at-decision', lying)
    await prepared(r, job)
    // Its prepare and commit go out (they count only as the stream's member's, and every
    // receiver checks them before use); its own commit is checked before its certificate.
    expect(sent).toEqual(['prepare', 'commit'])
    for (const i of [0, 2])
      await r.receive(member(i), { vote: await vote(job, i, 'commit'), proof: [] })
    expect(faults.map((f) => f.details)).toMatchObject([
      { signer: member(1).address, phase: 'commit' },
    ])
    expect(r.certificate).toBeUndefined()
    await r.receive(member(3), { vote: await vote(job, 3, 'commit'), proof: [] })
    const certificate = await r.decided
    verifyCertificate(certificate, committee, { domain, jobId: job })
    expect(certificate.signers).not.toContain(member(1).address)
    r.stop()
  })
})
