import { hashTypedData, privateKeySigner, toHex } from '@digicap/capsule-core'
import { concat, getBytes, hexlify, randomBytes, Signature } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildCertificate,
  certificateCall,
  hubCommittee,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import {
  byAddress,
  COMMIT_TYPES,
  certificate,
  certificateValue,
  certify,
  domainOf,
  grant,
  type HubWorld,
  mine,
  openJob,
  revertOf,
  SORTITION_WINDOW,
  STATUS,
  sent,
  startHubWorld,
  typedMessage,
} from './hub-world.ts'

/**
 * AttestationHub + CommitteeCertificate on a real anvil: jobs are opened from real grants on a
 * capsule whose policy requires attestation, the committee is the one CommitteeSortition seats
 * from real VRF tickets of NodeRegistry verifiers, and certificates are EIP-712 `Commit`
 * signatures made by ethers (an implementation independent of the contract).
 */
let w: HubWorld
let verifiers: HubWorld['verifiers']

beforeAll(async () => {
  w = await startHubWorld([4, 7], 31)
  verifiers = w.verifiers
}, 240_000)
afterAll(() => w?.anvil.stop())

const job = (seats: number, members: HubWorld['verifiers'], seat = true) =>
  openJob(w, seats, members, { seat })

describe('AttestationHub: the committee certificate checked on chain', () => {
  it('signs what @digicap/capsule-core hashes: domain {DigicapPbft, 1, chain, hub}, Commit struct', async () => {
    const { hub } = w.hubs.get(4)!
    const value = certificateValue(hexlify(randomBytes(32)), 5)
    const digest = hashTypedData({
      domain: domainOf(w, 4) as never,
      types: COMMIT_TYPES,
      primaryType: 'Commit',
      message: typedMessage(value),
    })
    expect(await hub.certificateDigest(value)).toBe(toHex(digest))
  })

  it("accepts the PBFT code's own certificate (signVote, buildCertificate, certificateCall) as is", async () => {
    const members = verifiers.slice(23, 27)
    const { hub, hubAddress } = w.hubs.get(4)!
    const { jobId, committee } = await job(4, members)
    const domain = pbftDomain(w.chainId, hubAddress)
    const value = { jobId: getBytes(jobId), view: 1n, verdict: 7, evidenceHash: randomBytes(32) }
    const commits = await Promise.all(
      members.map(async (m) => {
        const key = privateKeySigner(getBytes(m.privateKey))
        const vote = await signVote(key, domain, { phase: 'commit', preparedView: 0n, ...value })
        return { signer: key.address, vote }
      }),
    )
    const paper = pbftCommittee(
      members.map((m, i) => ({ address: m.address as `0x${string}`, peerId: `peer-${i}` })),
    )
    expect(hubCommittee(paper.members)).toEqual(committee)
    const cert = buildCertificate(domain, paper, commits)
    verifyCertificate(cert, paper, { domain, jobId: value.jobId })
    const call = certificateCall(cert, committee as `0x${string}`[])
    await sent(hub.submitCertificate(call.value, call.signerBits, call.others, call.signatures))
    const stored = await hub.jobs(jobId)
    expect([stored[2], stored[3]]).toEqual([STATUS.Certified, 7n])
  }, 120_000)

  it('accepts 2f + 1 member signatures once: records the verdict and the signers, emits it, refuses a second', async () => {
    const members = verifiers.slice(0, 4)
    const { hub } = w.hubs.get(4)!
    const { jobId, committee } = await job(4, members)
    const sorted = members.toSorted(byAddress)
    expect(committee).toEqual(sorted.map((m) => m.address))
    const value = certificateValue(jobId, 3)
    const c = await certificate(committee, sorted.slice(1), value, domainOf(w, 4))
    const receipt = await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
    const log = receipt.logs
      .map((l) => hub.interface.parseLog(l))
      .find((l) => l?.name === 'CertificateAccepted')
    expect(log?.args.toArray().map(String)).toEqual([jobId, '3', value.evidenceHash])
    const stored = await hub.jobs(jobId)
    // Status, verdict, and the signers as a bitmap over the sorted committee (members 1, 2, 3).
    expect([stored[2], stored[3], stored[4]]).toEqual([STATUS.Certified, 3n, 0b1110n])
    const again = await certificate(committee, sorted.slice(0, 3), value, domainOf(w, 4))
    expect(
      await revertOf(
        w,
        hub.submitCertificate.staticCall(value, again.bits, again.others, again.signatures),
      ),
    ).toBe(`JobClosed(${jobId},${STATUS.Certified})`)
  }, 120_000)

  it('refuses forged, short, duplicated, non-member, foreign-domain, mismatched and bad-verdict certificates', async () => {
    const members = verifiers.slice(4, 8).toSorted(byAddress)
    const outsider = verifiers[8]!
    const { hub } = w.hubs.get(4)!
    const { jobId, committee } = await job(4, members)
    expect(committee).toEqual(members.map((m) => m.address))
    const value = certificateValue(jobId)
    const submit = (c: { bits: bigint; others: string[]; signatures: string }, v = value) =>
      revertOf(w, hub.submitCertificate.staticCall(v, c.bits, c.others, c.signatures))
    const good = await certificate(committee, members.slice(0, 3), value, domainOf(w, 4))
    expect(good.bits).toBe(0b0111n)
    expect(good.others).toEqual([members[3]!.address])
    const sig = (c: { signatures: string }, i: number) =>
      `0x${c.signatures.slice(2 + 130 * i, 2 + 130 * (i + 1))}`

    // Forged: member 1's slot holds a signature of another value (recovers to a stranger).
    const other = await certificate(
      committee,
      members.slice(0, 3),
      certificateValue(jobId),
      domainOf(w, 4),
    )
    expect(
      await submit({ ...good, signatures: concat([sig(good, 0), sig(other, 1), sig(good, 2)]) }),
    ).toBe('NotTheCommittee()')
    // A flipped bit in r; a v that is neither 27 nor 28; the high-s twin of a valid signature.
    const flipped = getBytes(good.signatures)
    flipped[65 * 2 + 5]! ^= 1
    expect(await submit({ ...good, signatures: hexlify(flipped) })).toMatch(
      /^(NotTheCommittee|BadSignature)\(/,
    )
    const badV = getBytes(good.signatures)
    badV[64] = 29
    expect(await submit({ ...good, signatures: hexlify(badV) })).toBe('BadSignature(0)')
    const sig0 = Signature.from(sig(good, 0))
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const twin = concat([
      sig0.r,
      `0x${(n - BigInt(sig0.s)).toString(16).padStart(64, '0')}`,
      sig0.v === 27 ? '0x1c' : '0x1b',
    ])
    expect(await submit({ ...good, signatures: concat([twin, sig(good, 1), sig(good, 2)]) })).toBe(
      'BadSignature(0)',
    )
    // Fewer than 2f + 1 = 3.
    expect(
      await submit(await certificate(committee, members.slice(0, 2), value, domainOf(w, 4))),
    ).toBe('TooFewSignatures(2,3)')
    // Duplicated signer: member 0's signature in member 1's slot too.
    expect(
      await submit({ ...good, signatures: concat([sig(good, 0), sig(good, 0), sig(good, 2)]) }),
    ).toBe('NotTheCommittee()')
    // A bitmap that does not match the signatures and the others.
    expect(await submit({ ...good, bits: 0b1011n })).toBe('NotTheCommittee()')
    expect(await submit({ ...good, bits: 0b0011n })).toBe('SignersMismatch()')
    expect(await submit({ ...good, bits: 0b10111n })).toBe('SignersMismatch()')
    expect(await submit({ ...good, others: [] })).toBe('NotTheCommittee()')
    // A registered verifier that is not on this committee, signing in a member's slot.
    const withOutsider = await certify([members[0]!, outsider, members[2]!], value, domainOf(w, 4))
    expect(await submit({ ...good, signatures: withOutsider })).toBe('NotTheCommittee()')
    // Or listed among the others.
    expect(await submit({ ...good, others: [outsider.address] })).toBe('NotTheCommittee()')
    // Signature bytes that are not a whole number of 65-byte signatures.
    expect(await submit({ ...good, signatures: good.signatures.slice(0, -2) })).toBe(
      `SignaturesLength(${65 * 3 - 1})`,
    )
    // Signed for another contract (the 7-seat hub) or another chain: recovers to strangers.
    const otherHub = await certificate(
      committee,
      members.slice(0, 3),
      value,
      domainOf(w, 4, w.hubs.get(7)!.hubAddress),
    )
    expect(await submit(otherHub)).toBe('NotTheCommittee()')
    const otherChain = await certificate(
      committee,
      members.slice(0, 3),
      value,
      domainOf(w, 4, undefined, w.chainId + 1n),
    )
    expect(await submit(otherChain)).toBe('NotTheCommittee()')
    // Verdicts are 0 … 7.
    const eight = { ...value, verdict: 8 }
    expect(
      await submit(await certificate(committee, members.slice(0, 3), eight, domainOf(w, 4)), eight),
    ).toBe('InvalidVerdict(8)')
    // The good one still passes after all these.
    await sent(hub.submitCertificate(value, good.bits, good.others, good.signatures))
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.Certified)
  }, 120_000)

  it("refuses another job's certificate, whether its committee differs or is the same", async () => {
    const { hub } = w.hubs.get(4)!
    const a = await job(4, verifiers.slice(8, 12))
    const b = await job(4, verifiers.slice(12, 16))
    const c = await job(4, verifiers.slice(8, 12))
    const bValue = certificateValue(b.jobId)
    const bCert = await certificate(b.committee, verifiers.slice(12, 15), bValue, domainOf(w, 4))
    const cValue = certificateValue(c.jobId)
    const cCert = await certificate(c.committee, verifiers.slice(8, 11), cValue, domainOf(w, 4))
    const submit = (v: typeof bValue, x: typeof bCert) =>
      revertOf(w, hub.submitCertificate.staticCall(v, x.bits, x.others, x.signatures))
    // B's whole certificate relabelled as A's: B's committee is not A's.
    expect(await submit({ ...bValue, jobId: a.jobId }, bCert)).toBe('NotTheCommittee()')
    // C has A's committee: C's signatures relabelled as A's recover to strangers.
    expect(c.committee).toEqual(a.committee)
    expect(await submit({ ...cValue, jobId: a.jobId }, cCert)).toBe('NotTheCommittee()')
    // B's certificate is fine for B.
    await sent(hub.submitCertificate(bValue, bCert.bits, bCert.others, bCert.signatures))
  }, 120_000)

  it('closes a job without certificate as timed out after the deadline, not before; then refuses certificates', async () => {
    const { hub } = w.hubs.get(4)!
    // Only three tickets for four seats: the committee never fills.
    const { jobId } = await job(4, verifiers.slice(16, 19), false)
    expect(await revertOf(w, hub.seatCommittee.staticCall(jobId))).toBe(`SortitionOpen(${jobId})`)
    await mine(w, SORTITION_WINDOW)
    expect(await revertOf(w, hub.seatCommittee.staticCall(jobId))).toBe(
      `CommitteeIncomplete(${jobId},3,4)`,
    )
    const deadline = (await hub.jobs(jobId))[1]
    expect(await revertOf(w, hub.closeTimedOut.staticCall(jobId))).toBe(
      `DeadlineNotReached(${jobId},${deadline})`,
    )
    const value = certificateValue(jobId)
    expect(await revertOf(w, hub.submitCertificate.staticCall(value, 0, [], '0x'))).toBe(
      `CommitteeNotSeated(${jobId})`,
    )
    await mine(w, Number(deadline) - (await w.anvil.provider.getBlockNumber()))
    const receipt = await sent(hub.closeTimedOut(jobId))
    expect(receipt.logs.map((l) => hub.interface.parseLog(l)?.name).filter(Boolean)).toEqual([
      'JobTimedOut',
    ])
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.TimedOut)
    expect(await revertOf(w, hub.closeTimedOut.staticCall(jobId))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
    expect(await revertOf(w, hub.submitCertificate.staticCall(value, 0, [], '0x'))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
    expect(await revertOf(w, hub.seatCommittee.staticCall(jobId))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
  }, 120_000)

  it('refuses a late certificate on a seated job and lets it time out', async () => {
    const members = verifiers.slice(19, 23)
    const { hub } = w.hubs.get(4)!
    const { jobId, committee } = await job(4, members)
    const value = certificateValue(jobId)
    const late = await certificate(
      committee,
      members.toSorted(byAddress).slice(0, 3),
      value,
      domainOf(w, 4),
    )
    const deadline = (await hub.jobs(jobId))[1]
    await mine(w, Number(deadline) - (await w.anvil.provider.getBlockNumber()) + 1)
    expect(
      await revertOf(
        w,
        hub.submitCertificate.staticCall(value, late.bits, late.others, late.signatures),
      ),
    ).toBe(`DeadlinePassed(${jobId},${deadline})`)
    await sent(hub.closeTimedOut(jobId))
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.TimedOut)
  }, 120_000)

  it('opens a job only for a live grant of a capsule whose policy requires attestation, once', async () => {
    const { hub } = w.hubs.get(4)!
    const unknown = hexlify(randomBytes(32))
    expect(await revertOf(w, hub.openJob.staticCall(unknown))).toBe(`GrantNotFound(${unknown})`)
    // A capsule without attested(): anyone could otherwise lock its owner's fee.
    const plain = await grant(w, w.plainCapsule)
    expect(await revertOf(w, hub.openJob.staticCall(plain))).toBe(
      `AttestationNotRequired(${plain})`,
    )
    const g = await grant(w)
    await sent(hub.connect(verifiers[0]!).openJob(g))
    expect(await revertOf(w, hub.openJob.staticCall(g))).toBe(`JobExists(${g})`)
    // The escrow is locked: the owner cannot claim it, whatever time passes.
    expect((await w.c.accessController.getEscrow(g)).state).toBe(2n)
    // Another hub cannot lock an escrow this one locked.
    expect(await revertOf(w, w.hubs.get(7)!.hub.openJob.staticCall(g))).toBe(
      `EscrowNotHeld(${g},2)`,
    )
    // A grant past its window can no longer be opened.
    const late = await grant(w)
    const expiresAt = (await w.c.accessController.getGrant(late)).expiresAt
    await w.anvil.provider.send('evm_setNextBlockTimestamp', [Number(expiresAt)])
    await mine(w, 1)
    expect(await revertOf(w, hub.openJob.staticCall(late))).toBe(
      `GrantExpired(${late},${expiresAt})`,
    )
  }, 120_000)
})
