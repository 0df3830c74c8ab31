/**
 * ADR 0092: where a slash goes. On a real anvil, with the settlement deployed as production does:
 * - a fail slash is burned: an owner colluding with its executor (a run failed on purpose) gets
 *   none of the executor's bond, and the pair lose the slash and the signers' fee share;
 * - an equivocation slash pays its reporter `reporterBps` of it (the rest burned), not the owner
 *   (through the commit–reveal of ADR 0096: `reportPaid`);
 * - a member reporting itself through a second address gets back less than it loses;
 * - two different signed observations of one member (ADR 0087) are evidence the hub slashes,
 *   in the final round and in the before round.
 * Each fails on the contracts before ADR 0092 (owner paid at once, no reporter share, observation
 * phase refused with `InvalidPhase(3)`).
 */
import { privateKeySigner } from '@digicap/capsule-core'
import type { PbftVote } from '@digicap/protocol'
import { getBytes, hexlify, parseEther, randomBytes, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  equivocationCall,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyEquivocation,
} from '../src/index.ts'
import {
  attestedCapsuleOf,
  BURN_ADDRESS,
  byAddress,
  certificate,
  certificateValue,
  conserved,
  domainOf,
  EQUIVOCATION_SLASH,
  FAIL_SLASH,
  FEE,
  fastPathAudit,
  type HubWorld,
  openJob,
  REPORTER_BPS,
  reportPaid,
  revertOf,
  STAKE,
  sent,
  startHubWorld,
  VERIFIER_BPS,
} from './hub-world.ts'

let w: HubWorld
const gas: Record<string, bigint> = {}

beforeAll(async () => {
  w = await startHubWorld([4], 12)
  // The burn address holds ETH on a live chain: so here, and the gas below is the steady cost,
  // without the one-off creation of its account by the first burn (25k).
  await sent(w.deployer.sendTransaction({ to: BURN_ADDRESS, value: 1n }))
}, 240_000)
afterAll(() => {
  console.log(
    `ADR 0092 gas: ${JSON.stringify(Object.fromEntries(Object.entries(gas).map(([k, v]) => [k, Number(v)])))}`,
  )
  return w?.anvil.stop()
})

/** What an escrow still holds (Held or Disputed; a resolved one keeps its amount field). */
const escrowHeld = async (id: string) => {
  const e = await w.c.accessController.getEscrow(id)
  return e.state === 1n || e.state === 2n ? e.amount : 0n
}
const burned = () => w.anvil.provider.getBalance(BURN_ADDRESS)
const payout = (a: string) => w.c.nodeRegistry.payouts(a)
const stakeOf = async (a: string) => {
  const n = await w.c.nodeRegistry.getNode(a)
  return n.stake + n.unbonding
}

/** `member`'s signed vote of `phase` in `round` (the job id, or its before round's). */
function vote(
  member: Wallet,
  round: string,
  phase: 'prepare' | 'observation',
  verdict: number,
): Promise<PbftVote> {
  return signVote(
    privateKeySigner(getBytes(member.privateKey)),
    pbftDomain(w.chainId, w.hubs.get(4)!.hubAddress),
    {
      phase,
      jobId: getBytes(round),
      view: phase === 'observation' ? 0n : 1n,
      preparedView: 0n,
      verdict,
      evidenceHash: getBytes(hexlify(randomBytes(32))),
    },
  )
}

/** Opens and seats a job of the executor (topped up to the minimum stake) with `members`. */
async function seatedJob(members: Wallet[]) {
  const n = await w.c.nodeRegistry.getNode(w.executor.address)
  if (n.stake < STAKE) {
    const nr = w.c.nodeRegistry.connect(w.executor) as typeof w.c.nodeRegistry
    await sent(nr.addStake({ value: STAKE - n.stake }))
  }
  return openJob(w, 4, members)
}

/** A funded address with nothing else (a reporter, or a member's second address). */
async function fresh(): Promise<Wallet> {
  const a = new Wallet(hexlify(randomBytes(32)), w.anvil.provider)
  await sent(w.deployer.sendTransaction({ to: a.address, value: parseEther('0.1') }))
  return a
}

describe('ADR 0092: slashes leave the parties to a job', () => {
  it('a run failed on purpose pays the colluding owner nothing: the pair lose the slash and the signers’ share', async () => {
    const { hub } = w.hubs.get(4)!
    const E = w.executor
    const O = w.owner // the capsule's owner, colluding with E
    const members = w.verifiers.slice(0, 4)
    const { jobId, committee } = await seatedJob(members)
    const signers = members.toSorted(byAddress).slice(0, 3)
    const value = certificateValue(jobId, 0b101) // E withheld its during quote on purpose
    const cert = await certificate(committee, signers, value, domainOf(w, 4))
    await sent(hub.submitCertificate(value, cert.bits, cert.others, cert.signatures))
    // What the pair holds or can take out: E's bond, both sides' credits and payouts, the fee.
    const pair = async () =>
      (await stakeOf(E.address)) +
      (await w.c.accessController.credits(E.address)) +
      (await w.c.accessController.credits(O.address)) +
      (await payout(E.address)) +
      (await payout(O.address)) +
      (await escrowHeld(jobId))
    expect(await payout(O.address)).toBe(0n)
    const before = { pair: await pair(), burned: await burned(), held: await conserved(w) }
    const r = await sent(hub.settle(jobId, committee))
    gas['settle (fail, 3 signers, slash burned)'] = r.gasUsed
    const perSigner = (FEE * VERIFIER_BPS) / 10_000n / 3n
    // On the previous contracts the owner's payout was FAIL_SLASH here, claimable at once, and
    // the pair lost only the signers' share.
    expect(await payout(O.address)).toBe(0n)
    expect(
      await revertOf(
        w,
        (w.c.nodeRegistry.connect(O) as typeof w.c.nodeRegistry).claimPayout.staticCall(),
      ),
    ).toBe('NothingToWithdraw()')
    expect(before.pair - (await pair())).toBe(FAIL_SLASH + 3n * perSigner)
    expect((await burned()) - before.burned).toBe(FAIL_SLASH)
    expect(await conserved(w)).toEqual({
      ac: before.held.ac, // the escrow became credits inside the controller
      nr: before.held.nr - FAIL_SLASH,
    })
    // The owner still gets the fee, less the signers' share: the executor's payment, not its bond.
    expect(await w.c.accessController.credits(O.address)).toBe(FEE - 3n * perSigner)
  }, 240_000)

  it('an equivocation report pays the reporter its share and burns the rest; the owner gets nothing', async () => {
    const { hub } = w.hubs.get(4)!
    const members = w.verifiers.slice(4, 8)
    const { jobId, committee } = await seatedJob(members)
    const liar = members[0]!
    const proof = {
      member: liar.address as `0x${string}`,
      a: await vote(liar, jobId, 'prepare', 7),
      b: await vote(liar, jobId, 'prepare', 5),
    }
    const R = await fresh()
    const owner0 = await payout(w.owner.address)
    const before = { stake: await stakeOf(liar.address), burned: await burned() }
    const balance0 = await w.anvil.provider.getBalance(R.address)
    // Committed, then revealed (ADR 0096): a report in the clear pays no one.
    const { commit, reveal: r } = await reportPaid(w, hub, R, jobId, committee, proof)
    gas['commitReport'] = commit.gasUsed
    gas['revealEquivocation (prepare, reporter paid)'] = r.gasUsed
    const reward = (EQUIVOCATION_SLASH * REPORTER_BPS) / 10_000n
    const proven = r.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'EquivocationProven')
    expect(proven?.args.toArray()).toEqual([
      jobId,
      liar.address,
      1n,
      1n,
      EQUIVOCATION_SLASH,
      R.address,
      reward,
    ])
    expect(before.stake - (await stakeOf(liar.address))).toBe(EQUIVOCATION_SLASH)
    expect(await payout(R.address)).toBe(reward) // 0 on the previous contracts
    expect(await payout(w.owner.address)).toBe(owner0)
    expect((await burned()) - before.burned).toBe(EQUIVOCATION_SLASH - reward)
    const c = await sent((w.c.nodeRegistry.connect(R) as typeof w.c.nodeRegistry).claimPayout())
    gas['claimPayout (reporter)'] = c.gasUsed
    // The reporter is paid for its gas at this chain's price (anvil's), with a margin.
    const spent = commit.gasUsed * commit.gasPrice + r.gasUsed * r.gasPrice + c.gasUsed * c.gasPrice
    expect((await w.anvil.provider.getBalance(R.address)) - balance0).toBe(reward - spent)
    expect(reward).toBeGreaterThan(spent)
    await conserved(w)
  }, 240_000)

  it('a member reporting itself through a second address gets back less than it loses', async () => {
    const { hub } = w.hubs.get(4)!
    const members = w.verifiers.slice(5, 9)
    const { jobId, committee } = await seatedJob(members)
    const liar = members[0]!
    const second = await fresh() // the liar's own second address
    const proof = {
      member: liar.address as `0x${string}`,
      a: await vote(liar, jobId, 'prepare', 7),
      b: await vote(liar, jobId, 'prepare', 3),
    }
    const mine = async () => (await stakeOf(liar.address)) + (await payout(second.address))
    const before = await mine()
    await reportPaid(w, hub, second, jobId, committee, proof)
    const back = await payout(second.address)
    const lost = before - (await mine())
    expect(back).toBe((EQUIVOCATION_SLASH * REPORTER_BPS) / 10_000n)
    // The slash less the share it got back: the rest is burned, not in any hand of its own.
    expect(lost).toBe(EQUIVOCATION_SLASH - back)
    expect(lost).toBeGreaterThan(back)
    await conserved(w)
  }, 240_000)

  it('a self-report pays nothing from a bond already in another payee’s pending credit: that part is burned', async () => {
    const { hub } = w.hubs.get(4)!
    const ac = w.c.accessController
    // M: an executor and verifier; O: an owner it runs for. M is seated in job J first.
    const M = await fresh()
    const nrM = w.c.nodeRegistry.connect(M) as typeof w.c.nodeRegistry
    await sent(
      nrM.register(hexlify(randomBytes(38)), hexlify(randomBytes(32)), 3, { value: STAKE }),
    )
    const { jobId: J, committee } = await seatedJob([M, ...w.verifiers.slice(9, 12)])
    // O records M's audit with a fee of M's whole stake (its deposit is empty: the stake is
    // drawn), and the run settles as a pass: O's share is a locked credit, M's share goes back
    // into its unbonding funds (ADR 0006, amended).
    const O = await fresh()
    const grantId = await fastPathAudit(w, O, M, await attestedCapsuleOf(w, O), STAKE, 1n)
    const { committee: gc } = await openJob(w, 4, w.verifiers.slice(0, 4), { grantId })
    const value = certificateValue(grantId, 7)
    const signers = w.verifiers.slice(0, 4).toSorted(byAddress).slice(0, 3)
    const cert = await certificate(gc, signers, value, domainOf(w, 4))
    await sent(hub.submitCertificate(value, cert.bits, cert.others, cert.signatures))
    await sent(hub.settle(grantId, gc))
    const own = (await w.c.nodeRegistry.getNode(M.address)).unbonding // M's own funds now
    const [pending] = await ac.lockedCredits(O.address, grantId)
    expect(own).toBeGreaterThan(0n)
    expect(own).toBeLessThan(EQUIVOCATION_SLASH)
    // M equivocates in J and reports itself through a second address.
    const second = await fresh()
    const proof = {
      member: M.address as `0x${string}`,
      a: await vote(M, J, 'prepare', 7),
      b: await vote(M, J, 'prepare', 1),
    }
    const burned0 = await burned()
    const { reveal: r } = await reportPaid(w, hub, second, J, committee, proof)
    const proven = r.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'EquivocationProven')
    expect(proven?.args[4]).toBe(EQUIVOCATION_SLASH) // slashed: own funds, then O's pending share
    // The share is of M's own funds only; O's pending share is burned, nobody gets it.
    const reward = (own * REPORTER_BPS) / 10_000n
    expect(await payout(second.address)).toBe(reward)
    expect((await ac.lockedCredits(O.address, grantId))[0]).toBe(
      pending - (EQUIVOCATION_SLASH - own),
    )
    expect((await burned()) - burned0).toBe(EQUIVOCATION_SLASH - reward)
    expect(await payout(w.owner.address)).toBe(0n) // J's owner: nothing either
    await conserved(w)
  }, 240_000)

  it('two different signed observations of one member are slashed, in the final and the before round', async () => {
    const { hub, hubAddress } = w.hubs.get(4)!
    const members = w.verifiers.slice(6, 10)
    const { jobId, committee } = await seatedJob(members)
    const paper = pbftCommittee(
      members.map((m, i) => ({ address: m.address as `0x${string}`, peerId: `peer-${i}` })),
    )
    const domain = pbftDomain(w.chainId, hubAddress)
    const liar = members[0]!
    const proof = {
      member: liar.address as `0x${string}`,
      a: await vote(liar, jobId, 'observation', 7),
      b: await vote(liar, jobId, 'observation', 5),
    }
    verifyEquivocation(proof, domain, paper) // what a member checks before it reports
    const call = equivocationCall(proof)
    expect([call.a.phase, call.b.phase]).toEqual([3, 3])
    // An observation and a prepare of the same member are two slots, not a conflict.
    const prepare = equivocationCall({
      ...proof,
      b: await vote(liar, jobId, 'prepare', 5),
    })
    expect(
      await revertOf(w, hub.reportEquivocation.staticCall(jobId, committee, call.a, prepare.b)),
    ).toBe('NotConflicting()')
    // The same observation in the before round's report: signed for the job, not its before round.
    expect(
      await revertOf(w, hub.reportBeforeEquivocation.staticCall(jobId, committee, call.a, call.b)),
    ).toBe('EquivocationSignature(1)') // a recovers to some other address, b to another
    const R = await fresh()
    const stake0 = await stakeOf(liar.address)
    // InvalidPhase(3) on the previous contracts.
    const { reveal: r } = await reportPaid(w, hub, R, jobId, committee, proof)
    gas['revealEquivocation (observation)'] = r.gasUsed
    const proven = r.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'EquivocationProven')
    expect(proven?.args[2]).toBe(3n) // phase
    expect(stake0 - (await stakeOf(liar.address))).toBe(EQUIVOCATION_SLASH)
    expect(await w.c.nodeRegistry.reputationOf(liar.address)).toBe(0n)

    // The before round: another member's two observations of `beforeRoundOf(jobId)`.
    const before = await hub.beforeRoundOf(jobId)
    const other = members[1]!
    const beforeProof = {
      member: other.address as `0x${string}`,
      a: await vote(other, before, 'observation', 1),
      b: await vote(other, before, 'observation', 0),
    }
    const b = equivocationCall(beforeProof)
    expect(await revertOf(w, hub.reportEquivocation.staticCall(jobId, committee, b.a, b.b))).toBe(
      'EquivocationSignature(1)',
    )
    const { reveal: rb } = await reportPaid(w, hub, R, jobId, committee, beforeProof)
    gas['revealBeforeEquivocation (observation)'] = rb.gasUsed
    expect(await w.c.nodeRegistry.reputationOf(other.address)).toBe(0n)
    expect(await payout(R.address)).toBe((2n * EQUIVOCATION_SLASH * REPORTER_BPS) / 10_000n)
    await conserved(w)
  }, 240_000)
})
