/**
 * Stake a fast-path audit draws from an executor's bond (`drawForAudit`) never becomes liquid
 * before the NodeRegistry's `unbondingDelay`, so an executor cannot pull its bond out through an
 * escrow and escape a pending fail slash (review finding: bonded stake left in minutes):
 * - the executor may not record an audit on a capsule it owns or operates;
 * - a refunded escrow (the job timed out) goes back where it came from: the drawn stake into the
 *   executor's unbonding funds (slashable, released after `unbondingDelay`), the deposit-funded
 *   part into its deposit, nothing into its credits;
 * - an escrow holding drawn stake is not claimable by the capsule owner before `unbondingDelay`;
 * - a settled verdict (pass or fail) pays the owner's and the signers' shares of drawn stake as
 *   locked credits (`stakeClaimDelay` after settlement), the executor's into its unbonding funds,
 *   and a slash of the executor meanwhile still takes them (and burns them, ADR 0092).
 * On a real anvil, with the settlement deployed as production does.
 */
import { attested, reasonName } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  type HDNodeWallet,
  hexlify,
  keccak256,
  parseEther,
  randomBytes,
  type Signer,
  Wallet,
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BURN_ADDRESS,
  byAddress,
  CERTIFICATE_BLOCKS,
  certificate,
  certificateValue,
  conserved,
  domainOf,
  FAIL_SLASH,
  type HubWorld,
  mine,
  openJob,
  revertOf,
  SORTITION_WINDOW,
  STAKE,
  sent,
  startHubWorld,
} from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4], 4)
}, 240_000)
afterAll(() => w?.anvil.stop())

const ACCESS_REQUEST_TYPES = {
  AccessRequest: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'executor', type: 'address' },
    { name: 'ephemeralKey', type: 'bytes32' },
    { name: 'measurement', type: 'bytes32' },
    { name: 'jobParamsHash', type: 'bytes32' },
    { name: 'fee', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'expiry', type: 'uint64' },
  ],
}

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
const now = async () => BigInt((await w.anvil.provider.getBlock('latest'))!.timestamp)

/** A funded account; registered as an executor with `STAKE` when `executor`. */
async function account(executor: boolean): Promise<HDNodeWallet> {
  const a = Wallet.createRandom(w.anvil.provider)
  await sent(w.deployer.sendTransaction({ to: a.address, value: parseEther('1') }))
  if (executor) {
    const nr = w.c.nodeRegistry.connect(a) as typeof w.c.nodeRegistry
    await sent(nr.register(hexlify(randomBytes(38)), hexlify(randomBytes(32)), 1, { value: STAKE }))
  }
  return a
}

/** A capsule owned by `owner` whose policy is `attested()` (the hub settles its grants). */
async function attestedCapsule(owner: Signer): Promise<string> {
  const policy = await deployPolicy(owner, attested(), { nodeRegistry: w.addresses.nodeRegistry })
  const id = hexlify(randomBytes(32))
  const registry = w.c.capsuleRegistry.connect(owner) as typeof w.c.capsuleRegistry
  await sent(
    registry.register(
      id,
      policy.address,
      CID,
      hexlify(randomBytes(32)),
      hexlify(randomBytes(38)),
      hexlify(randomBytes(32)),
    ),
  )
  return id
}

/** `executor`'s signed fast-path request for `fee` on `capsuleId`. */
async function signed(
  executor: Signer & { address: string },
  capsuleId: string,
  fee: bigint,
  nonce: bigint,
) {
  const req = {
    capsuleId,
    executor: executor.address,
    ephemeralKey: hexlify(randomBytes(32)),
    measurement: hexlify(randomBytes(32)),
    jobParamsHash: keccak256('0x'),
    fee,
    nonce,
    expiry: (await now()) + 300n,
  }
  const domain = {
    name: 'DigicapAccessController',
    version: '1',
    chainId: w.chainId,
    verifyingContract: w.addresses.accessController,
  }
  return { req, signature: await executor.signTypedData(domain, ACCESS_REQUEST_TYPES, req) }
}

/** Records `s` as `recorder` (the capsule owner or its operator); the grant id. */
async function record(recorder: Signer, s: Awaited<ReturnType<typeof signed>>): Promise<string> {
  const ac = w.c.accessController.connect(recorder) as typeof w.c.accessController
  const id = await ac.recordFastPathGrant.staticCall(s.req, '0x', s.signature)
  await sent(ac.recordFastPathGrant(s.req, '0x', s.signature))
  return id
}

describe('stake drawn by a fast-path audit stays bonded', () => {
  it('an executor cannot record an audit on a capsule it owns or operates', async () => {
    const E = await account(true)
    const own = await attestedCapsule(E)
    const s = await signed(E, own, STAKE, 1n)
    const acE = w.c.accessController.connect(E) as typeof w.c.accessController
    // The keyguard's check refuses it before any release (reason 7, EXECUTOR_IS_KEYGUARD).
    const [allowed, reason] = await acE.checkAccess(
      own,
      E.address,
      s.req.ephemeralKey,
      s.req.measurement,
      0n,
      true,
      '0x',
    )
    expect([allowed, reasonName(reason)]).toEqual([false, 'EXECUTOR_IS_KEYGUARD'])
    expect(await revertOf(w, acE.recordFastPathGrant.staticCall(s.req, '0x', s.signature))).toBe(
      `ExecutorIsKeyguard(${own},${E.address})`,
    )
    // As the operator of another owner's capsule: refused too, whoever sends it.
    const O = await account(false)
    const theirs = await attestedCapsule(O)
    const registry = w.c.capsuleRegistry.connect(O) as typeof w.c.capsuleRegistry
    await sent(registry.setOperator(E.address, true))
    const t = await signed(E, theirs, STAKE, 1n)
    const acO = w.c.accessController.connect(O) as typeof w.c.accessController
    for (const ac of [acE, acO]) {
      expect(await revertOf(w, ac.recordFastPathGrant.staticCall(t.req, '0x', t.signature))).toBe(
        `ExecutorIsKeyguard(${theirs},${E.address})`,
      )
    }
    expect((await w.c.nodeRegistry.getNode(E.address)).stake).toBe(STAKE)
    await conserved(w)
  }, 240_000)

  it('a timed-out audit escrow goes back into the deposit and the unbonding stake, where a pending fail slash still reaches it', async () => {
    const { hub } = w.hubs.get(4)!
    const E = w.executor
    const nr = w.c.nodeRegistry
    const ac = w.c.accessController
    // A job of E certified as a fail; its settlement comes later.
    const members = w.verifiers.slice(0, 4)
    const { jobId: failed, committee } = await openJob(w, 4, members)
    const value = certificateValue(failed, 0b101)
    const cert = await certificate(
      committee,
      members.toSorted(byAddress).slice(0, 3),
      value,
      domainOf(w, 4),
    )
    await sent(hub.submitCertificate(value, cert.bits, cert.others, cert.signatures))

    // An owner colluding with E records an audit whose fee is E's deposit and its whole stake.
    const D = parseEther('0.002')
    await sent((ac.connect(E) as typeof ac).deposit({ value: D }))
    const O = await account(false)
    const capsule = await attestedCapsule(O)
    const credit0 = await ac.credits(E.address)
    const grantId = await record(O, await signed(E, capsule, D + STAKE, 1n))
    expect((await nr.getNode(E.address)).stake).toBe(0n)
    expect(await ac.escrowFromStake(grantId)).toBe(STAKE)

    // The job times out: the refund is no credit.
    await sent(hub.openJob(grantId))
    await mine(w, SORTITION_WINDOW + CERTIFICATE_BLOCKS + 2)
    const closed = await sent(hub.closeTimedOut(grantId))
    const refundedAt = BigInt((await w.anvil.provider.getBlock(closed.blockNumber))!.timestamp)
    expect(await ac.credits(E.address)).toBe(credit0)
    expect(await ac.deposits(E.address)).toBe(D)
    const node = await nr.getNode(E.address)
    expect(node.unbonding).toBe(STAKE)
    expect(node.unbondingReleaseAt).toBe(refundedAt + (await nr.unbondingDelay()))
    expect(await nr.drawnForAudits(E.address)).toBe(0n)
    const nrE = nr.connect(E) as typeof nr
    expect(await revertOf(w, nrE.withdraw.staticCall())).toBe(
      `StillUnbonding(${node.unbondingReleaseAt})`,
    )

    // The fail settles and slashes what came back.
    const rs = await sent(hub.settle(failed, committee))
    const settled = rs.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'JobSettled')
    expect(settled?.args[2]).toBe(FAIL_SLASH) // executorSlashed
    expect((await nr.getNode(E.address)).unbonding).toBe(STAKE - FAIL_SLASH)
    await conserved(w)
  }, 240_000)

  it('an escrow holding drawn stake is claimable by the owner only after the unbonding delay', async () => {
    const nr = w.c.nodeRegistry
    const ac = w.c.accessController
    const E = await account(true)
    const O = await account(false)
    const capsule = await attestedCapsule(O)
    const t0 = await now()
    const id = await record(O, await signed(E, capsule, STAKE, 1n))
    const { claimableAt } = await ac.getEscrow(id)
    const unbondingDelay = await nr.unbondingDelay()
    expect(claimableAt).toBeGreaterThanOrEqual(t0 + unbondingDelay)
    expect(await ac.stakeClaimDelay()).toBe(unbondingDelay)
    const acO = ac.connect(O) as typeof ac
    await w.anvil.increaseTime(Number(await ac.disputeWindow()) + 1)
    expect(await revertOf(w, acO.claimFees.staticCall([id]))).toBe(
      `EscrowLocked(${id},${claimableAt})`,
    )
    await w.anvil.increaseTime(Number(claimableAt - (await now())))
    const b0 = await w.anvil.provider.getBalance(O.address)
    const r = await sent(acO.claimFees([id]))
    expect((await w.anvil.provider.getBalance(O.address)) - b0 + r.gasUsed * r.gasPrice).toBe(STAKE)
    expect((await now()) - t0).toBeGreaterThanOrEqual(unbondingDelay)
    await conserved(w)
  }, 240_000)

  /** A colluding owner's audit drawing a fresh executor's whole stake, settled as `verdict`. */
  async function settledDraw(verdict: number) {
    const { hub } = w.hubs.get(4)!
    const ac = w.c.accessController
    const E = await account(true)
    const O = await account(false)
    const capsule = await attestedCapsule(O)
    const grantId = await record(O, await signed(E, capsule, STAKE, 1n))
    expect(await ac.escrowFromStake(grantId)).toBe(STAKE)
    const members = w.verifiers.slice(0, 4)
    const { committee } = await openJob(w, 4, members, { grantId })
    const signers = members.toSorted(byAddress).slice(0, 3)
    const value = certificateValue(grantId, verdict)
    const cert = await certificate(committee, signers, value, domainOf(w, 4))
    await sent(hub.submitCertificate(value, cert.bits, cert.others, cert.signatures))
    const r = await sent(hub.settle(grantId, committee))
    const settledAt = BigInt((await w.anvil.provider.getBlock(r.blockNumber))!.timestamp)
    const paid = r.logs.map((l) => hub.interface.parseLog(l)).find((e) => e?.name === 'EscrowPaid')
    const [, perSigner, toExecutor, toOwner] = paid!.args as unknown as [
      string,
      bigint,
      bigint,
      bigint,
    ]
    const releaseAt = settledAt + (await ac.stakeClaimDelay())
    return { E, O, grantId, signers, perSigner, toExecutor, toOwner, releaseAt, settledAt }
  }

  for (const [verdict, name] of [
    [7, 'pass'],
    [0b101, 'fail'],
  ] as const) {
    it(`a colluding owner's share of drawn stake settled by a ${name} is withdrawable only after stakeClaimDelay`, async () => {
      const nr = w.c.nodeRegistry
      const ac = w.c.accessController
      const d = await settledDraw(verdict)
      const acO = ac.connect(d.O) as typeof ac
      // Nothing of it is a credit: on the previous contracts `withdrawCredit` paid the owner's
      // share here, minutes after the stake was drawn.
      expect(await ac.credits(d.O.address)).toBe(0n)
      expect(await revertOf(w, acO.withdrawCredit.staticCall())).toBe('NothingToWithdraw()')
      // A fail's slash of E (nothing left in its stake) takes the newest pending share, the
      // owner's, and burns it (ADR 0092); before, it became the owner's locked credit again.
      const toOwner = name === 'fail' ? d.toOwner - FAIL_SLASH : d.toOwner
      expect(await ac.lockedCredits(d.O.address, d.grantId)).toEqual([toOwner, d.releaseAt])
      for (const s of d.signers) {
        const [amount, at] = await ac.lockedCredits(s.address, d.grantId)
        expect([amount, at]).toEqual([d.perSigner, d.releaseAt])
      }
      // The executor's share (a pass) went back into its unbonding funds, slashable.
      const node = await nr.getNode(d.E.address)
      expect(node.unbonding).toBe(d.toExecutor)
      if (name === 'pass') {
        expect(d.toExecutor).toBeGreaterThan(0n)
        expect(node.unbondingReleaseAt).toBe(d.settledAt + (await nr.unbondingDelay()))
      }
      expect(await ac.credits(d.E.address)).toBe(0n)
      await conserved(w)

      expect(await revertOf(w, acO.withdrawLockedCredits.staticCall([d.grantId]))).toBe(
        `CreditLocked(${d.grantId},${d.releaseAt})`,
      )
      await w.anvil.increaseTime(Number(d.releaseAt - (await now())) - 5)
      await mine(w, 1)
      expect(await now()).toBeLessThan(d.releaseAt)
      expect(await revertOf(w, acO.withdrawLockedCredits.staticCall([d.grantId]))).toBe(
        `CreditLocked(${d.grantId},${d.releaseAt})`,
      )
      await w.anvil.increaseTime(Number(d.releaseAt - (await now())))
      const b0 = await w.anvil.provider.getBalance(d.O.address)
      const r = await sent(acO.withdrawLockedCredits([d.grantId]))
      const got = (await w.anvil.provider.getBalance(d.O.address)) - b0 + r.gasUsed * r.gasPrice
      expect(got).toBe(toOwner)
      expect(await ac.lockedCredits(d.O.address, d.grantId)).toEqual([0n, 0n])
      expect(await revertOf(w, acO.withdrawLockedCredits.staticCall([d.grantId]))).toBe(
        'NothingToWithdraw()',
      )
      await conserved(w)
    }, 240_000)
  }

  it("a slash of the executor before the release takes the colluding owner's pending share, and burns it (ADR 0092)", async () => {
    const { hub } = w.hubs.get(4)!
    const nr = w.c.nodeRegistry
    const ac = w.c.accessController
    const d = await settledDraw(7)
    // Another owner's run of the same executor (no fee) is certified as a fail and settled
    // inside the window: the stake and unbonding funds are short, the rest comes from the
    // pending shares of the drawn stake, newest first (the colluding owner's).
    const V = await account(false)
    const capsule = await attestedCapsule(V)
    const job = await record(V, await signed(d.E, capsule, 0n, 1n))
    const members = w.verifiers.slice(0, 4)
    const { committee } = await openJob(w, 4, members, { grantId: job })
    const value = certificateValue(job, 0b101)
    const cert = await certificate(
      committee,
      members.toSorted(byAddress).slice(0, 3),
      value,
      domainOf(w, 4),
    )
    await sent(hub.submitCertificate(value, cert.bits, cert.others, cert.signatures))
    const burned0 = await w.anvil.provider.getBalance(BURN_ADDRESS)
    const r = await sent(hub.settle(job, committee))
    const settled = r.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'JobSettled')
    expect(settled?.args[2]).toBe(FAIL_SLASH)
    const seized = FAIL_SLASH - d.toExecutor
    expect((await nr.getNode(d.E.address)).unbonding).toBe(0n)
    expect(await ac.lockedCredits(d.O.address, d.grantId)).toEqual([
      d.toOwner - seized,
      d.releaseAt,
    ])
    // Burned whole, the part from unbonding funds and the part seized (ADR 0092): the owner of
    // the failed run is paid nothing from the slash, neither at once nor locked.
    expect(await nr.payouts(V.address)).toBe(0n)
    expect(await ac.lockedCredits(V.address, d.grantId)).toEqual([0n, 0n])
    expect((await w.anvil.provider.getBalance(BURN_ADDRESS)) - burned0).toBe(FAIL_SLASH)
    await conserved(w)
    await w.anvil.increaseTime(Number(d.releaseAt - (await now())))
    const acO = ac.connect(d.O) as typeof ac
    const b0 = await w.anvil.provider.getBalance(d.O.address)
    const rw = await sent(acO.withdrawLockedCredits([d.grantId]))
    const got = (await w.anvil.provider.getBalance(d.O.address)) - b0 + rw.gasUsed * rw.gasPrice
    expect(got).toBe(d.toOwner - seized)
    await conserved(w)
  }, 240_000)
})
