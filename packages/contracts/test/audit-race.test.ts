/**
 * The race of issue #12: a keyguard evaluates `checkAccess` with `eth_call`, releases the key, then
 * sends `recordFastPathGrant`. Between the release and the audit being mined, the executor tries
 * to pull what the audit relies on: its deposit, its stake, its executor role. Each attack is
 * mined in the same block as the audit (ahead of it, by a higher tip) or in the block before it.
 * The audit must still be mined: the run counted, the fee escrowed and claimable by the owner.
 *
 * The attacker also tries the one-step `withdrawDeposit(uint256)` of the contracts before ADR
 * 0006, so that this file shows the bypass on them.
 */
import { Interface, parseEther, type TransactionResponse, type Wallet, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { parseEvents } from '../src/events.ts'
import { ACCESS_REQUEST_TYPES, accessRequestDomain, jobParamsHash } from '../src/fastpath.ts'
import { all, fee, maxRuns } from '../src/policy/expression.ts'
import { Reason } from '../src/reasons.ts'
import {
  AUDIT_WINDOW,
  bytes32,
  capsuleWith,
  DISPUTE_WINDOW,
  expectConserved,
  expectRevert,
  MIN_STAKE,
  peerId,
  ROLE_EXECUTOR,
  ROLE_VERIFIER,
  send,
  UNBONDING_DELAY,
  useWorld,
  WITHDRAWAL_DELAY,
  type World,
} from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const FEE = parseEther('0.001')
// Fixed, so that txs race in one block: an audit drawing stake costs ~327k (its at-risk entry).
const GAS = 400_000n
const TIP = { attacker: 10_000_000_000n, keyguard: 1_000_000_000n }

/** Every way the executor could pull its deposit, before and after ADR 0006. */
const pull = new Interface([
  'function withdrawDeposit(uint256 amount)',
  'function withdrawDeposit()',
  'function requestWithdrawal(uint256 amount)',
])

type Attack = 'withdraw-deposit' | 'unbond-stake' | 'drop-executor-role' | 'all'

function attackCalls(attack: Attack): { to: 'ac' | 'nr'; data: string }[] {
  const nr = w.c.nodeRegistry.interface
  const deposit = [
    { to: 'ac' as const, data: pull.encodeFunctionData('withdrawDeposit(uint256)', [FEE]) },
    { to: 'ac' as const, data: pull.encodeFunctionData('requestWithdrawal', [FEE]) },
    { to: 'ac' as const, data: pull.encodeFunctionData('withdrawDeposit()') },
  ]
  const stake = [
    { to: 'nr' as const, data: nr.encodeFunctionData('requestUnbond', [MIN_STAKE]) },
    { to: 'nr' as const, data: nr.encodeFunctionData('withdraw') },
  ]
  const role = [
    {
      to: 'nr' as const,
      data: nr.encodeFunctionData('update', [peerId(), bytes32(), ROLE_VERIFIER]),
    },
  ]
  if (attack === 'withdraw-deposit') return deposit
  if (attack === 'unbond-stake') return stake
  if (attack === 'drop-executor-role') return role
  return [...deposit, ...stake, ...role]
}

/** Sends without waiting (automine is off): fixed gas so that a reverting call is still sent. */
function sendRaw(from: Wallet, to: string, data: string, tip: bigint) {
  return from.sendTransaction({
    to,
    data,
    gasLimit: GAS,
    maxPriorityFeePerGas: tip,
    maxFeePerGas: tip + 100_000_000_000n,
  })
}

async function mine(): Promise<void> {
  await w.anvil.provider.send('evm_mine', [])
}

async function statusOf(tx: TransactionResponse): Promise<number | null> {
  const receipt = await w.anvil.provider.getTransactionReceipt(tx.hash)
  return receipt?.status ?? null
}

/** The keyguard's side up to the release: a signed request that `checkAccess` allows. */
async function releasedRequest(capsuleId: string, feeSigned = FEE, nonce = BigInt(bytes32())) {
  const now = (await w.anvil.provider.getBlock('latest'))!.timestamp
  const req = {
    capsuleId,
    executor: w.executor.address,
    ephemeralKey: bytes32(),
    measurement: ZeroHash,
    jobParamsHash: jobParamsHash('0x'),
    fee: feeSigned,
    nonce,
    // The keyguard accepts no request expiring later than the audit window.
    expiry: BigInt(now + AUDIT_WINDOW),
  }
  const domain = accessRequestDomain(w.anvil.chainId, w.addresses.accessController)
  const signature = await w.executor.signTypedData(domain, ACCESS_REQUEST_TYPES, req)
  const [allowed, reason] = await w.c.accessController.checkAccess(
    capsuleId,
    req.executor,
    req.ephemeralKey,
    req.measurement,
    feeSigned,
    true,
    '0x',
  )
  expect([allowed, reason]).toEqual([true, BigInt(Reason.OK)])
  return { req, signature }
}

async function race(attack: Attack, timing: 'same-block' | 'block-before') {
  const { capsuleId } = await capsuleWith(w, all(fee('0.001'), maxRuns(1)))
  await send(w.c.accessController.connect(w.executor).deposit({ value: FEE }))
  const executorBefore = await w.anvil.provider.getBalance(w.executor.address)
  const { req, signature } = await releasedRequest(capsuleId)
  // The key has left. The executor now races the audit.
  await w.anvil.provider.send('evm_setAutomine', [false])
  const attacks: TransactionResponse[] = []
  let audit: TransactionResponse | undefined
  try {
    for (const call of attackCalls(attack)) {
      const to = call.to === 'ac' ? w.addresses.accessController : w.addresses.nodeRegistry
      attacks.push(await sendRaw(w.executor, to, call.data, TIP.attacker))
    }
    if (timing === 'block-before') {
      await mine()
      // The keyguard is slow: its audit lands late in the window.
      await w.anvil.provider.send('evm_increaseTime', [AUDIT_WINDOW - 60])
    }
    const data = w.c.accessController.interface.encodeFunctionData('recordFastPathGrant', [
      req,
      '0x',
      signature,
    ])
    audit = await sendRaw(w.owner, w.addresses.accessController, data, TIP.keyguard)
    await mine()
  } finally {
    await w.anvil.provider.send('evm_setAutomine', [true])
  }
  const auditReceipt = await w.anvil.provider.getTransactionReceipt(audit!.hash)
  const attackReceipts = await Promise.all(
    attacks.map((t) => w.anvil.provider.getTransactionReceipt(t.hash)),
  )
  // The attack was really mined ahead of the audit.
  for (const r of attackReceipts) {
    expect(r).not.toBeNull()
    expect(
      r!.blockNumber < auditReceipt!.blockNumber ||
        (r!.blockNumber === auditReceipt!.blockNumber && r!.index < auditReceipt!.index),
    ).toBe(true)
  }
  expect(await statusOf(audit!), 'the audit must be mined despite the attack').toBe(1)
  const ac = w.c.accessController
  expect(await ac.runCount(capsuleId)).toBe(1n)
  const [granted] = parseEvents(ac, auditReceipt!, 'AccessGranted')
  const escrow = await ac.getEscrow(granted!.grantId)
  expect(escrow.amount).toBe(FEE)
  // No deposit left the contract: the executor only paid gas.
  expect(await ac.deposits(w.executor.address)).toBe(0n)
  expect(await w.anvil.provider.getBalance(w.executor.address)).toBeLessThan(executorBefore)
  await w.anvil.increaseTime(DISPUTE_WINDOW)
  const claim = await send(ac.connect(w.owner).claimFees([granted!.grantId]))
  expect(parseEvents(ac, claim, 'FeeClaimed')[0]!.amount).toBe(FEE)
  await expectConserved(w)
  return { capsuleId, attackReceipts }
}

describe('a fast-path audit the executor races after the key left', () => {
  for (const attack of ['withdraw-deposit', 'unbond-stake', 'drop-executor-role', 'all'] as const) {
    for (const timing of ['same-block', 'block-before'] as const) {
      it(`is still mined, counted and paid: ${attack}, ${timing}`, async () => {
        await race(attack, timing)
      })
    }
  }

  it('leaves the executor refused for the next release, and its deposit locked until the delay', async () => {
    const { capsuleId } = await race('all', 'same-block')
    const ac = w.c.accessController
    const check = () =>
      ac.checkAccess(capsuleId, w.executor.address, bytes32(), ZeroHash, 0n, true, '0x')
    // Dropped the executor role: not active (the audit's isBound still holds for the delay).
    expect((await check()).reason).toBe(BigInt(Reason.EXECUTOR_NOT_REGISTERED))
    expect(await w.c.nodeRegistry.isBound(w.executor.address, ROLE_EXECUTOR)).toBe(true)
    await send(w.c.nodeRegistry.connect(w.executor).update(peerId(), bytes32(), ROLE_EXECUTOR))
    await send(w.c.nodeRegistry.connect(w.executor).addStake({ value: MIN_STAKE }))
    // Active again, but still unbonding: leaving.
    expect((await check()).reason).toBe(BigInt(Reason.EXECUTOR_LEAVING))
    await w.anvil.increaseTime(UNBONDING_DELAY)
    await send(w.c.nodeRegistry.connect(w.executor).withdraw())
    expect(await w.c.nodeRegistry.isLeaving(w.executor.address)).toBe(false)
    // The fee took the whole deposit: the pending withdrawal has nothing left to send.
    await w.anvil.increaseTime(WITHDRAWAL_DELAY)
    await expectRevert(ac.connect(w.executor).withdrawDeposit(), 'NothingToWithdraw')
    await expectConserved(w)
  })
})

/**
 * ADR 0073: a chain-path `requestAccess` (higher tip) mined in the same block ahead of the audit
 * takes the last run of `maxRuns(1)`. The key is out: the audit must be recorded as an overrun
 * (`FastPathOverrun`), the run counted and the fee escrowed, never reverted.
 */
describe('a fast-path audit a chain grant races for the last run', () => {
  it('is recorded as an overrun: both runs counted, the fee paid, overrunRunCount set', async () => {
    const { capsuleId } = await capsuleWith(w, all(fee('0.001'), maxRuns(1)))
    await send(w.c.accessController.connect(w.executor).deposit({ value: FEE }))
    const { req, signature } = await releasedRequest(capsuleId)
    const ac = w.c.accessController
    await w.anvil.provider.send('evm_setAutomine', [false])
    let chain: TransactionResponse | undefined
    let audit: TransactionResponse | undefined
    try {
      chain = await w.executor.sendTransaction({
        to: w.addresses.accessController,
        data: ac.interface.encodeFunctionData('requestAccess', [
          capsuleId,
          bytes32(),
          ZeroHash,
          '0x',
        ]),
        value: FEE,
        gasLimit: GAS,
        maxPriorityFeePerGas: TIP.attacker,
        maxFeePerGas: TIP.attacker + 100_000_000_000n,
      })
      const data = ac.interface.encodeFunctionData('recordFastPathGrant', [req, '0x', signature])
      audit = await sendRaw(w.owner, w.addresses.accessController, data, TIP.keyguard)
      await mine()
    } finally {
      await w.anvil.provider.send('evm_setAutomine', [true])
    }
    const chainReceipt = await w.anvil.provider.getTransactionReceipt(chain!.hash)
    const auditReceipt = await w.anvil.provider.getTransactionReceipt(audit!.hash)
    expect(chainReceipt!.status).toBe(1)
    expect(chainReceipt!.blockNumber).toBe(auditReceipt!.blockNumber)
    expect(chainReceipt!.index).toBeLessThan(auditReceipt!.index)
    expect(auditReceipt!.status, 'the audit of a released key must be mined').toBe(1)
    const [chainGrant] = parseEvents(ac, chainReceipt!, 'AccessGranted')
    const [fastGrant] = parseEvents(ac, auditReceipt!, 'AccessGranted')
    expect((await ac.getGrant(chainGrant!.grantId)).runIndex).toBe(0n)
    expect((await ac.getGrant(fastGrant!.grantId)).runIndex).toBe(1n)
    const [overrun] = parseEvents(ac, auditReceipt!, 'FastPathOverrun')
    expect([overrun!.capsuleId, overrun!.grantId, Number(overrun!.reason)]).toEqual([
      capsuleId,
      fastGrant!.grantId,
      Reason.MAX_RUNS_REACHED,
    ])
    expect(await ac.runCount(capsuleId)).toBe(2n)
    // A keyguard refuses chain grants below this run index (the fast-path key took their run).
    expect(await ac.overrunRunCount(capsuleId)).toBe(2n)
    expect((await ac.getEscrow(fastGrant!.grantId)).amount).toBe(FEE)
    expect((await ac.getEscrow(chainGrant!.grantId)).amount).toBe(FEE)
    expect(await ac.deposits(w.executor.address)).toBe(0n)
    await expectConserved(w)
  })
})

/**
 * Several keyguards (capsules of different owners) release keys to one executor against one
 * deposit and one nonce before any audit is mined. Before per-capsule nonces and the draw from
 * stake, the second audit reverted (`NonceUsed` or `InsufficientDeposit`): run not counted, fee
 * not paid.
 */
describe('one executor, several keyguards, one deposit (releases before any audit)', () => {
  /** Releases on each capsule (checkAccess passes for each), then mines all the audits in one block. */
  async function fanOut(feeSigned: bigint, keyguards: Wallet[], nonce: bigint) {
    const capsules: string[] = []
    for (const owner of keyguards)
      capsules.push((await capsuleWith(w, all(fee('0.001'), maxRuns(1)), owner)).capsuleId)
    const released = []
    for (const capsuleId of capsules)
      released.push(await releasedRequest(capsuleId, feeSigned, nonce))
    await w.anvil.provider.send('evm_setAutomine', [false])
    const audits: TransactionResponse[] = []
    try {
      for (const [i, { req, signature }] of released.entries()) {
        const data = w.c.accessController.interface.encodeFunctionData('recordFastPathGrant', [
          req,
          '0x',
          signature,
        ])
        audits.push(await sendRaw(keyguards[i]!, w.addresses.accessController, data, TIP.keyguard))
      }
      await mine()
    } finally {
      await w.anvil.provider.send('evm_setAutomine', [true])
    }
    const receipts = await Promise.all(
      audits.map((a) => w.anvil.provider.getTransactionReceipt(a.hash)),
    )
    return { capsules, receipts }
  }

  it('counts and pays both audits on one nonce: the second fee comes from the bonded stake', async () => {
    const ac = w.c.accessController
    await send(ac.connect(w.executor).deposit({ value: FEE }))
    const nonce = BigInt(bytes32())
    const { capsules, receipts } = await fanOut(FEE, [w.owner, w.other], nonce)
    for (const r of receipts) expect(r?.status, 'both audits must be mined').toBe(1)
    expect(receipts[0]!.blockNumber).toBe(receipts[1]!.blockNumber)
    for (const capsuleId of capsules) {
      expect(await ac.runCount(capsuleId)).toBe(1n)
      expect(await ac.nonceUsed(w.executor.address, capsuleId, nonce)).toBe(true)
    }
    const grants = receipts.map((r) => parseEvents(ac, r!, 'AccessGranted')[0]!.grantId)
    for (const g of grants) expect((await ac.getEscrow(g)).amount).toBe(FEE)
    const [shortfall] = parseEvents(ac, receipts[1]!, 'AuditShortfall')
    expect([shortfall!.grantId, shortfall!.fromStake, shortfall!.uncovered]).toEqual([
      grants[1],
      FEE,
      0n,
    ])
    expect(await ac.deposits(w.executor.address)).toBe(0n)
    const node = await w.c.nodeRegistry.getNode(w.executor.address)
    expect(node.stake).toBe(MIN_STAKE - FEE)
    expect(await w.c.nodeRegistry.drawnForAudits(w.executor.address)).toBe(FEE)
    // Below the minimum stake now: no further release, on either path.
    expect(await w.c.nodeRegistry.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(false)
    // Each owner claims its whole fee: the deposit-paid one after the dispute window, the one
    // holding drawn stake only after the unbonding delay (it must not leave the bond sooner).
    expect(await ac.escrowFromStake(grants[1]!)).toBe(FEE)
    await w.anvil.increaseTime(DISPUTE_WINDOW)
    const first = await send(ac.connect(w.owner).claimFees([grants[0]!]))
    expect(parseEvents(ac, first, 'FeeClaimed')[0]!.amount).toBe(FEE)
    const { claimableAt } = await ac.getEscrow(grants[1]!)
    await expectRevert(ac.connect(w.other).claimFees([grants[1]!]), 'EscrowLocked', [
      grants[1],
      claimableAt,
    ])
    await w.anvil.increaseTime(UNBONDING_DELAY)
    const second = await send(ac.connect(w.other).claimFees([grants[1]!]))
    expect(parseEvents(ac, second, 'FeeClaimed')[0]!.amount).toBe(FEE)
    await expectConserved(w)
  })

  it('still counts every run when deposit and stake fall short: the escrow holds what was left', async () => {
    const ac = w.c.accessController
    // One fee is the whole stake plus half of it again: the deposit pays the first audit, the
    // stake part of the second, nothing is left for the third.
    const big = MIN_STAKE + MIN_STAKE / 2n
    await send(ac.connect(w.executor).deposit({ value: big }))
    const { capsules, receipts } = await fanOut(big, [w.owner, w.other, w.settler], 1n)
    for (const r of receipts) expect(r?.status, 'every audit must be mined').toBe(1)
    for (const capsuleId of capsules) expect(await ac.runCount(capsuleId)).toBe(1n)
    const grants = receipts.map((r) => parseEvents(ac, r!, 'AccessGranted')[0]!.grantId)
    expect((await ac.getEscrow(grants[0]!)).amount).toBe(big)
    expect((await ac.getEscrow(grants[1]!)).amount).toBe(MIN_STAKE)
    expect((await ac.getEscrow(grants[2]!)).amount).toBe(0n)
    const shortfalls = receipts.slice(1).map((r) => parseEvents(ac, r!, 'AuditShortfall')[0]!)
    expect(shortfalls.map((e) => [e.fromStake, e.uncovered])).toEqual([
      [MIN_STAKE, big - MIN_STAKE],
      [0n, big],
    ])
    const node = await w.c.nodeRegistry.getNode(w.executor.address)
    expect([node.stake, node.unbonding]).toEqual([0n, 0n])
    // maxRuns(1) still holds on every capsule.
    for (const capsuleId of capsules) {
      const [allowed] = await ac.checkAccess(
        capsuleId,
        w.executor.address,
        bytes32(),
        ZeroHash,
        0n,
        false,
        '0x',
      )
      expect(allowed).toBe(false)
    }
    await expectConserved(w)
  })

  it('lets only the AccessController draw stake, once named', async () => {
    const nr = w.c.nodeRegistry
    await expectRevert(
      nr.connect(w.other).drawForAudit(w.executor.address, 1n),
      'NotAccessController',
      [w.other.address],
    )
    await expectRevert(nr.setAccessController(w.other.address), 'AccessControllerAlreadySet', [
      w.addresses.accessController,
    ])
    await expectRevert(
      w.other.sendTransaction({ to: w.addresses.accessController, value: 1n }),
      'NotNodeRegistry',
      [w.other.address],
    )
  })
})

describe('checkAccess before a release (what the keyguard evaluates)', () => {
  const check = (capsuleId: string, feePaid: bigint) =>
    w.c.accessController.checkAccess(
      capsuleId,
      w.executor.address,
      bytes32(),
      ZeroHash,
      feePaid,
      true,
      '0x',
    )

  it('counts only the unlocked deposit: deposit minus the pending withdrawal', async () => {
    const { capsuleId } = await capsuleWith(w, fee('0.001'))
    const ac = w.c.accessController.connect(w.executor)
    await send(ac.deposit({ value: FEE * 3n }))
    await send(ac.requestWithdrawal(FEE * 2n))
    expect((await check(capsuleId, FEE)).allowed).toBe(true)
    await send(ac.requestWithdrawal(1n))
    expect((await check(capsuleId, FEE)).reason).toBe(BigInt(Reason.INSUFFICIENT_DEPOSIT))
    await send(ac.cancelWithdrawal())
    expect((await check(capsuleId, FEE * 3n)).allowed).toBe(true)
  })

  it('refuses a leaving executor on the fast path only (the chain path is one transaction)', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    await send(w.c.nodeRegistry.connect(w.executor).addStake({ value: MIN_STAKE }))
    await send(w.c.nodeRegistry.connect(w.executor).requestUnbond(1n))
    expect(await w.c.nodeRegistry.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(true)
    expect((await check(capsuleId, 0n)).reason).toBe(BigInt(Reason.EXECUTOR_LEAVING))
    const chainPath = await w.c.accessController.checkAccess(
      capsuleId,
      w.executor.address,
      bytes32(),
      ZeroHash,
      0n,
      false,
      '0x',
    )
    expect(chainPath.allowed).toBe(true)
  })

  it('the audit of a release older than the delays is not protected (isBound ends)', async () => {
    await send(w.c.nodeRegistry.connect(w.executor).update(peerId(), bytes32(), ROLE_VERIFIER))
    expect(await w.c.nodeRegistry.isBound(w.executor.address, ROLE_EXECUTOR)).toBe(true)
    await w.anvil.increaseTime(UNBONDING_DELAY)
    expect(await w.c.nodeRegistry.isBound(w.executor.address, ROLE_EXECUTOR)).toBe(false)
    expect(WITHDRAWAL_DELAY).toBeGreaterThan(AUDIT_WINDOW)
  })
})
