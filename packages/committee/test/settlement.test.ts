import { privateKeySigner } from '@digicap/capsule-core'
import { getBytes, hexlify, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type EquivocationProof,
  equivocationCall,
  hubCommittee,
  nextReputation,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyEquivocation,
} from '../src/index.ts'
import {
  BURN_ADDRESS,
  byAddress,
  certificate,
  certificateValue,
  conserved,
  domainOf,
  EQUIVOCATION_SLASH,
  EXECUTOR_BPS,
  FAIL_SLASH,
  FEE,
  type HubWorld,
  mine,
  openJob,
  REPORTER_BPS,
  reportPaid,
  revertOf,
  SORTITION_WINDOW,
  STAKE,
  STATUS,
  sent,
  startHubWorld,
  VERIFIER_BPS,
} from './hub-world.ts'

/**
 * Settlement on a real anvil (ADR 0027): a pass pays the escrow out and raises reputation, a
 * fail slashes the executor (burned, ADR 0092), a timeout refunds the executor, an equivocation proof
 * made by the PBFT code slashes the member; after each, both contracts still hold exactly what
 * they owe (balance == totalHeld).
 */
let w: HubWorld
const gas: Record<string, bigint> = {}

// GAS_N31=1 also seats a 31-member committee for the 21-signature row (a one-off: 31 VRF
// tickets take minutes on the loaded CI box).
const N31 = process.env.GAS_N31 === '1'

beforeAll(async () => {
  w = await startHubWorld(N31 ? [4, 7, 31] : [4, 7], N31 ? 31 : 12)
}, 240_000)
afterAll(() => w?.anvil.stop())

const reputation = async (a: string) => Number(await w.c.nodeRegistry.reputationOf(a))
const credit = (a: string) => w.c.accessController.credits(a)

/** A seated 4-member job, its sorted members and a certificate of the first three. */
async function certified(verdict: number, members = w.verifiers.slice(0, 4)) {
  const { hub } = w.hubs.get(4)!
  const { jobId, committee, openGas, ticketGas } = await openJob(w, 4, members)
  const sorted = members.toSorted(byAddress)
  const signers = sorted.slice(0, 3)
  const value = certificateValue(jobId, verdict)
  const c = await certificate(committee, signers, value, domainOf(w, 4))
  const r = await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
  gas['certificate, 3 signatures (n = 4)'] = r.gasUsed
  gas['open job'] = openGas
  gas['VRF ticket (submitTicket)'] = ticketGas.reduce((a, b) => (b > a ? b : a), 0n)
  return { jobId, committee, sorted, signers, idle: sorted[3]! }
}

describe('AttestationHub settlement', () => {
  it('a pass pays signers, executor and owner from the escrow, and raises signers and executor along the curve', async () => {
    const { hub } = w.hubs.get(4)!
    const { jobId, committee, signers, idle } = await certified(7)
    const before = {
      reps: await Promise.all([...signers, idle].map((s) => reputation(s.address))),
      executor: await reputation(w.executor.address),
      credits: await Promise.all(
        [...signers.map((s) => s.address), w.executor.address, w.owner.address].map(credit),
      ),
      held: await conserved(w),
    }
    const r = await sent(hub.settle(jobId, committee))
    gas['settle (pass, 3 signers)'] = r.gasUsed
    const perSigner = (FEE * VERIFIER_BPS) / 10_000n / 3n
    const toExecutor = (FEE * EXECUTOR_BPS) / 10_000n
    const toOwner = FEE - 3n * perSigner - toExecutor
    const events = r.logs.map((l) => hub.interface.parseLog(l)).filter((l) => l !== null)
    expect(events.find((e) => e.name === 'EscrowPaid')?.args.toArray()).toEqual([
      jobId,
      perSigner,
      toExecutor,
      toOwner,
    ])
    expect(events.find((e) => e.name === 'JobSettled')?.args.toArray()).toEqual([jobId, true, 0n])
    const after = await Promise.all(
      [...signers.map((s) => s.address), w.executor.address, w.owner.address].map(credit),
    )
    expect(after.map((a, i) => a - before.credits[i]!)).toEqual([
      perSigner,
      perSigner,
      perSigner,
      toExecutor,
      toOwner,
    ])
    // Signers and the executor earn one settled pass each (the TypeScript curve, applied on
    // chain); the member that did not sign earns nothing.
    expect(await Promise.all(signers.map((s) => reputation(s.address)))).toEqual(
      before.reps.slice(0, 3).map((x) => nextReputation(x, 'pass')),
    )
    expect(await reputation(idle.address)).toBe(before.reps[3])
    expect(await reputation(w.executor.address)).toBe(nextReputation(before.executor, 'pass'))
    // The escrow became credits inside the controller: nothing left, nothing created.
    expect(await conserved(w)).toEqual(before.held)
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.Settled)
    expect(await revertOf(w, hub.settle.staticCall(jobId, committee))).toBe(
      `NotCertified(${jobId},${STATUS.Settled})`,
    )
    await sent(w.c.accessController.connect(signers[0]!).withdrawCredit())
    await conserved(w)
  }, 120_000)

  it('a fail halves the executor’s reputation and burns the slash (ADR 0092); signers are still paid', async () => {
    const { hub } = w.hubs.get(4)!
    const { jobId, committee, signers } = await certified(0b101) // "during" failed
    const rep = await reputation(w.executor.address)
    const node = await w.c.nodeRegistry.getNode(w.executor.address)
    const payout = await w.c.nodeRegistry.payouts(w.owner.address)
    const burned = await w.anvil.provider.getBalance(BURN_ADDRESS)
    const executorCredit = await credit(w.executor.address)
    const before = await conserved(w)
    const r = await sent(hub.settle(jobId, committee))
    gas['settle (fail, 3 signers, slash)'] = r.gasUsed
    const settled = r.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'JobSettled')
    expect(settled?.args.toArray()).toEqual([jobId, false, FAIL_SLASH])
    expect(await reputation(w.executor.address)).toBe(nextReputation(rep, 'fail'))
    expect((await w.c.nodeRegistry.getNode(w.executor.address)).stake).toBe(node.stake - FAIL_SLASH)
    expect(await w.c.nodeRegistry.payouts(w.owner.address)).toBe(payout)
    expect(await w.anvil.provider.getBalance(BURN_ADDRESS)).toBe(burned + FAIL_SLASH)
    expect(await credit(w.executor.address)).toBe(executorCredit)
    expect(await credit(signers[0]!.address)).toBeGreaterThan(0n)
    // The slash left the registry for the burn address, and nothing else moved out.
    expect(await conserved(w)).toEqual({ ...before, nr: before.nr - FAIL_SLASH })
    // Below the minimum stake the executor gets no grant until it tops up.
    expect(await w.c.nodeRegistry.isActive(w.executor.address, 1)).toBe(false)
    await sent(
      (w.c.nodeRegistry.connect(w.executor) as typeof w.c.nodeRegistry).addStake({
        value: FAIL_SLASH,
      }),
    )
    expect(await w.c.nodeRegistry.isActive(w.executor.address, 1)).toBe(true)
  }, 120_000)

  it('a timeout refunds the escrow to the executor and moves no reputation', async () => {
    const { hub } = w.hubs.get(4)!
    const members = w.verifiers.slice(4, 7) // three tickets for four seats: never seated
    const { jobId } = await openJob(w, 4, members, { seat: false })
    const reps = await Promise.all([w.executor, ...members].map((m) => reputation(m.address)))
    const executorCredit = await credit(w.executor.address)
    const deadline = (await hub.jobs(jobId))[1]
    expect(await revertOf(w, hub.closeTimedOut.staticCall(jobId))).toBe(
      `DeadlineNotReached(${jobId},${deadline})`,
    )
    await mine(w, Number(deadline) - (await w.anvil.provider.getBlockNumber()))
    const before = await conserved(w)
    const r = await sent(hub.connect(w.verifiers[11]!).closeTimedOut(jobId))
    gas['close timed out (refund)'] = r.gasUsed
    expect(
      r.logs
        .map((l) => hub.interface.parseLog(l))
        .find((e) => e?.name === 'JobTimedOut')
        ?.args.toArray(),
    ).toEqual([jobId, FEE])
    expect(await credit(w.executor.address)).toBe(executorCredit + FEE)
    expect(await Promise.all([w.executor, ...members].map((m) => reputation(m.address)))).toEqual(
      reps,
    )
    expect(await conserved(w)).toEqual(before)
    // The refunded escrow is gone for good: the owner cannot claim it.
    await w.anvil.provider.send('evm_increaseTime', [2 * 24 * 3600])
    await expect(
      w.c.accessController.connect(w.owner).claimFees.staticCall([jobId]),
    ).rejects.toThrow()
  }, 120_000)

  it('an equivocation proof from the PBFT code zeroes the member’s reputation and slashes it once', async () => {
    const { hub, hubAddress } = w.hubs.get(4)!
    // Not the members of the other tests: the liar's stake drops below the minimum.
    const members = w.verifiers.slice(8, 12)
    const outsider = w.verifiers[0]!
    const early = await openJob(w, 4, members, { seat: false })
    await mine(w, SORTITION_WINDOW)
    const { jobId, committee } = await openJob(w, 4, members)
    const domain = pbftDomain(w.chainId, hubAddress)
    const vote = (
      m: Wallet,
      verdict: number,
      phase: 'prepare' | 'commit' | 'view-change' = 'prepare',
      view = 1n,
    ) =>
      signVote(privateKeySigner(getBytes(m.privateKey)), domain, {
        phase,
        jobId: getBytes(jobId),
        view,
        preparedView: 0n,
        verdict,
        evidenceHash: getBytes(hexlify(randomBytes(32))),
      })
    const liar = members[2]!
    const proof: EquivocationProof = {
      member: liar.address as `0x${string}`,
      a: await vote(liar, 7),
      b: await vote(liar, 1),
    }
    const paper = pbftCommittee(
      members.map((m, i) => ({ address: m.address as `0x${string}`, peerId: `peer-${i}` })),
    )
    verifyEquivocation(proof, domain, paper) // what the PBFT node checks before it reports
    const call = equivocationCall(proof)
    const report = (c = call, list: string[] = hubCommittee(paper.members), job = jobId) =>
      revertOf(w, hub.reportEquivocation.staticCall(job, list, c.a, c.b))

    // Refused: before the committee is seated; the same vote twice; other views; a view-change
    // phase; votes of two members; a non-member's conflicting votes; another committee list.
    expect(await report(call, [], early.jobId)).toBe(`CommitteeNotSeated(${early.jobId})`)
    expect(await report({ ...call, b: call.a })).toBe('NotConflicting()')
    const otherView = equivocationCall({ ...proof, b: await vote(liar, 1, 'prepare', 2n) })
    expect(await report(otherView)).toBe('NotConflicting()')
    expect(await report({ ...call, b: { ...call.b, phase: 4 } })).toBe('InvalidPhase(4)')
    // An observation (phase 3) is another slot than a prepare: no conflict between the two.
    expect(await report({ ...call, b: { ...call.b, phase: 3 } })).toBe('NotConflicting()')
    const twoMembers = equivocationCall({ ...proof, b: await vote(members[0]!, 1) })
    expect(await report(twoMembers)).toBe('EquivocationSignature(1)')
    const stranger = equivocationCall({
      member: outsider.address as `0x${string}`,
      a: await vote(outsider, 7),
      b: await vote(outsider, 1),
    })
    expect(await report(stranger)).toBe(`NotCommitteeMember(${outsider.address})`)
    expect(await report(call, [...committee].reverse())).toBe(`CommitteeMismatch(${jobId})`)

    const rep = await reputation(liar.address)
    expect(rep).toBeGreaterThan(0)
    const stake = (await w.c.nodeRegistry.getNode(liar.address)).stake
    const payout = await w.c.nodeRegistry.payouts(w.owner.address)
    const reporter = w.verifiers[7]!
    const reporterPayout = await w.c.nodeRegistry.payouts(reporter.address)
    const reward = (EQUIVOCATION_SLASH * REPORTER_BPS) / 10_000n
    const before = await conserved(w)
    // Committed, then revealed (ADR 0096): the share goes to the committed reporter.
    const { commit, reveal: r } = await reportPaid(w, hub, reporter, jobId, committee, proof)
    gas['slash proof (commitReport)'] = commit.gasUsed
    gas['slash proof (revealEquivocation)'] = r.gasUsed
    expect(
      r.logs
        .map((l) => hub.interface.parseLog(l))
        .find((e) => e?.name === 'EquivocationProven')
        ?.args.toArray(),
    ).toEqual([jobId, liar.address, 1n, 1n, EQUIVOCATION_SLASH, reporter.address, reward])
    expect(await reputation(liar.address)).toBe(nextReputation(rep, 'equivocation'))
    expect((await w.c.nodeRegistry.getNode(liar.address)).stake).toBe(stake - EQUIVOCATION_SLASH)
    // The reporter's share (ADR 0092), the rest burned; the owner gets nothing of it.
    expect(await w.c.nodeRegistry.payouts(w.owner.address)).toBe(payout)
    expect(await w.c.nodeRegistry.payouts(reporter.address)).toBe(reporterPayout + reward)
    expect(await conserved(w)).toEqual({ ...before, nr: before.nr - (EQUIVOCATION_SLASH - reward) })
    // Once per member and job, whatever pair of votes is brought next.
    const commits = equivocationCall({
      ...proof,
      a: await vote(liar, 7, 'commit'),
      b: await vote(liar, 3, 'commit'),
    })
    expect(await report(commits)).toBe(`AlreadyConvicted(${jobId},${liar.address})`)
    // A committee member may not be ignored for long: the job goes on (certificate, settle).
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.Seated)
  }, 120_000)

  it('settle refuses a job without certificate, an unknown job and a wrong committee list', async () => {
    const { hub } = w.hubs.get(4)!
    const { jobId, committee } = await openJob(w, 4, w.verifiers.slice(0, 4))
    expect(await revertOf(w, hub.settle.staticCall(jobId, committee))).toBe(
      `NotCertified(${jobId},${STATUS.Seated})`,
    )
    const unknown = hexlify(randomBytes(32))
    expect(await revertOf(w, hub.settle.staticCall(unknown, committee))).toBe(
      `NotCertified(${unknown},${STATUS.None})`,
    )
    const value = certificateValue(jobId)
    const sorted = w.verifiers.slice(0, 4).toSorted(byAddress)
    const c = await certificate(committee, sorted.slice(1), value, domainOf(w, 4))
    await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
    expect(await revertOf(w, hub.settle.staticCall(jobId, committee.slice(1)))).toBe(
      `CommitteeMismatch(${jobId})`,
    )
  }, 120_000)

  it('gas of a certificate with 5 signatures (n = 7) in a real transaction: ≤ 60k; prints the table', async () => {
    const members = w.verifiers.slice(0, 7)
    const { hub } = w.hubs.get(7)!
    const { jobId, committee } = await openJob(w, 7, members)
    const value = certificateValue(jobId)
    const c = await certificate(
      committee,
      members.toSorted(byAddress).slice(0, 5),
      value,
      domainOf(w, 7),
    )
    const tx = await hub.submitCertificate(value, c.bits, c.others, c.signatures)
    const { gasUsed } = (await tx.wait())!
    gas['certificate, 5 signatures (n = 7)'] = gasUsed
    if (N31) {
      const all = w.verifiers.slice(0, 31)
      const big = await openJob(w, 31, all)
      const v = certificateValue(big.jobId)
      const c31 = await certificate(
        big.committee,
        all.toSorted(byAddress).slice(0, 21),
        v,
        domainOf(w, 31),
      )
      const r31 = await sent(
        w.hubs.get(31)!.hub.submitCertificate(v, c31.bits, c31.others, c31.signatures),
      )
      gas['certificate, 21 signatures (n = 31)'] = r31.gasUsed
    }
    if (process.env.TRACE_GAS) {
      const trace = (await w.anvil.provider.send('debug_traceTransaction', [tx.hash, {}])) as {
        structLogs: { op: string; gasCost: number; depth: number }[]
      }
      const byOp = new Map<string, number>()
      for (const l of trace.structLogs)
        if (l.depth <= 1) byOp.set(l.op, (byOp.get(l.op) ?? 0) + l.gasCost)
      console.log(
        trace.structLogs.length,
        JSON.stringify([...byOp].sort((a, b) => b[1] - a[1]).slice(0, 30)),
      )
    }
    const calldata = getBytes(tx.data).reduce((sum, b) => sum + (b === 0 ? 4 : 16), 0)
    console.log(
      `settlement gas (calldata of the 5-signature certificate: ${calldata}):\n${Object.entries(gas)
        .map(([k, v]) => `  ${k}: ${v}`)
        .join('\n')}`,
    )
    expect(gasUsed).toBeLessThanOrEqual(60_000n)
  }, 120_000)
})

describe('AttestationHub settlement, random sequences', () => {
  it('every account is credited exactly what its role earns, and both contracts hold exactly what they owe (balance == totalHeld)', async () => {
    const { hub } = w.hubs.get(4)!
    const members = w.verifiers.slice(0, 4)
    // The deployer reports the equivocation: its payout is the reporter's share (ADR 0092).
    const accounts = [...members, w.executor, w.owner, w.deployer].map((a) => a.address)
    // The model: credits (AccessController) and payouts (NodeRegistry) per account, and the
    // totals each contract must hold, predicted from the settlement rules alone.
    const credits = new Map<string, bigint>()
    const payouts = new Map<string, bigint>()
    for (const a of accounts) {
      credits.set(a, await w.c.accessController.credits(a))
      payouts.set(a, await w.c.nodeRegistry.payouts(a))
    }
    const add = (m: Map<string, bigint>, a: string, x: bigint) => m.set(a, (m.get(a) ?? 0n) + x)
    let held = await conserved(w)
    const check = async (what: string) => {
      for (const a of accounts) {
        expect(await w.c.accessController.credits(a), `${what}: credit of ${a}`).toBe(
          credits.get(a),
        )
        expect(await w.c.nodeRegistry.payouts(a), `${what}: payout of ${a}`).toBe(payouts.get(a))
      }
      expect(await conserved(w), what).toEqual(held)
    }
    const topUp = async (node: Wallet) => {
      const n = await w.c.nodeRegistry.getNode(node.address)
      if (n.stake < STAKE) {
        await sent(
          (w.c.nodeRegistry.connect(node) as typeof w.c.nodeRegistry).addStake({
            value: STAKE - n.stake,
          }),
        )
        held = { ...held, nr: held.nr + STAKE - n.stake }
      }
    }
    let seed = 0x5eed
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return (seed >>> 16) % k
    }
    const outcomes: string[] = []
    for (let step = 0; step < 6; step++) {
      await topUp(w.executor)
      for (const m of members) await topUp(m)
      // Every path, in an order where each follows another (the seats and the rest are random).
      // The equivocation last: its liar's reputation is 0 for good (0 is final, ADR 0027
      // amended), so it could not be seated again with these four verifiers.
      const outcome = ['pass', 'timeout', 'fail', 'pass', 'fail', 'equivocation'][step]!
      outcomes.push(outcome)
      const { jobId, committee } = await openJob(w, 4, members, { seat: outcome !== 'timeout' })
      held = { ...held, ac: held.ac + FEE }
      await check(`${outcome}: open`)
      if (outcome === 'timeout') {
        await mine(
          w,
          Number((await hub.jobs(jobId))[1]) - (await w.anvil.provider.getBlockNumber()),
        )
        await sent(hub.closeTimedOut(jobId))
        add(credits, w.executor.address, FEE)
      } else {
        const sorted = members.toSorted(byAddress)
        const idle = rnd(4)
        const signers = sorted.filter((_, i) => i !== idle)
        if (outcome === 'equivocation') {
          const liar = signers[rnd(3)]!
          const domain = pbftDomain(w.chainId, w.hubs.get(4)!.hubAddress)
          const vote = (verdict: number) =>
            signVote(privateKeySigner(getBytes(liar.privateKey)), domain, {
              phase: 'commit',
              jobId: getBytes(jobId),
              view: 0n,
              preparedView: 0n,
              verdict,
              evidenceHash: new Uint8Array(32),
            })
          const call = equivocationCall({
            member: liar.address as `0x${string}`,
            a: await vote(7),
            b: await vote(0),
          })
          const stake = (await w.c.nodeRegistry.getNode(liar.address)).stake
          await sent(hub.reportEquivocation(jobId, committee, call.a, call.b))
          const slashed = stake < EQUIVOCATION_SLASH ? stake : EQUIVOCATION_SLASH
          // A report in the clear pays no one (ADR 0096): all of it burned.
          held = { ...held, nr: held.nr - slashed }
          await check('equivocation: slashed')
        }
        const verdict = outcome === 'fail' ? rnd(7) : 7
        const value = certificateValue(jobId, verdict)
        const c = await certificate(committee, signers, value, domainOf(w, 4))
        await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
        const stake = (await w.c.nodeRegistry.getNode(w.executor.address)).stake
        await sent(hub.settle(jobId, committee))
        const perSigner = (FEE * VERIFIER_BPS) / 10_000n / 3n
        const toExecutor = verdict === 7 ? (FEE * EXECUTOR_BPS) / 10_000n : 0n
        for (const s of signers) add(credits, s.address, perSigner)
        add(credits, w.executor.address, toExecutor)
        add(credits, w.owner.address, FEE - 3n * perSigner - toExecutor)
        // A fail slash is burned whole (ADR 0092): it leaves the registry, no one is paid.
        if (verdict !== 7)
          held = { ...held, nr: held.nr - (stake < FAIL_SLASH ? stake : FAIL_SLASH) }
      }
      await check(`${outcome}: settled`)
      // Someone cashes out now and then: the contract's holdings drop by exactly that.
      const who = [w.owner, w.executor, ...members][rnd(6)]!
      const credit = credits.get(who.address)!
      if (credit > 0n) {
        await sent(
          (w.c.accessController.connect(who) as typeof w.c.accessController).withdrawCredit(),
        )
        credits.set(who.address, 0n)
        held = { ...held, ac: held.ac - credit }
      }
      const payout = payouts.get(who.address)!
      if (payout > 0n) {
        await sent((w.c.nodeRegistry.connect(who) as typeof w.c.nodeRegistry).claimPayout())
        payouts.set(who.address, 0n)
        held = { ...held, nr: held.nr - payout }
      }
      await check(`${outcome}: cashed out`)
    }
    expect(new Set(outcomes).size).toBe(4)
  }, 240_000)
})
