import { recoverTypedDataSigner } from '@digicap/capsule-core'
import {
  concat,
  keccak256,
  parseEther,
  Signature,
  toBeHex,
  toQuantity,
  type Wallet,
  ZeroHash,
} from 'ethers'
import { describe, expect, it } from 'vitest'
import { deployPolicy } from '../src/compiler/policy.ts'
import { deployDigicap } from '../src/deploy.ts'
import { parseEvents } from '../src/events.ts'
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  computeGrantId,
  hashAccessRequest,
  jobParamsHash,
  type SignedAccessRequest,
} from '../src/fastpath.ts'
import { all, environment, fee, maxRuns, minReputation } from '../src/policy/expression.ts'
import { Reason } from '../src/reasons.ts'
import { JOB_PARAMS_POLICY, REVERTING_POLICY, SILENT_DENY_POLICY } from './fixtures/policies.ts'
import {
  ADMIN_DELAY,
  balanceOf,
  bytes32,
  CID,
  capsuleWith,
  DISPUTE_WINDOW,
  deployAttacker,
  expectConserved,
  expectRevert,
  GRANT_WINDOW,
  MIN_STAKE,
  peerId,
  ROLE_VERIFIER,
  send,
  timelocked,
  useWorld,
  WITHDRAWAL_DELAY,
  type World,
} from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const FEE = parseEther('0.01')

async function now(): Promise<number> {
  return (await w.anvil.provider.getBlock('latest'))!.timestamp
}

describe('requestAccess (chain path)', () => {
  it('stores the grant, counts the run and emits AccessGranted', async () => {
    const m = bytes32()
    const { capsuleId } = await capsuleWith(w, all(minReputation(1), environment(m), maxRuns(3)))
    const key = bytes32()
    const ac = w.c.accessController.connect(w.executor)
    const grantId = await ac.requestAccess.staticCall(capsuleId, key, m, '0x1234')
    const receipt = await send(ac.requestAccess(capsuleId, key, m, '0x1234'))
    const block = await w.anvil.provider.getBlock(receipt.blockNumber)
    const [ev] = parseEvents(w.c.accessController, receipt, 'AccessGranted')
    expect(ev).toEqual({
      grantId,
      capsuleId,
      executor: w.executor.address,
      ephemeralKey: key,
      measurement: m,
      expiresAt: BigInt(block!.timestamp + GRANT_WINDOW),
      fastPath: false,
    })
    expect(grantId).toBe(
      computeGrantId({
        chainId: w.anvil.chainId,
        accessController: w.addresses.accessController,
        capsuleId,
        executor: w.executor.address,
        ephemeralKey: key,
        measurement: m,
        runIndex: 0,
      }),
    )
    const g = await w.c.accessController.getGrant(grantId)
    expect(g.executor).toBe(w.executor.address)
    expect(g.capsuleId).toBe(capsuleId)
    expect(g.ephemeralKey).toBe(key)
    expect(g.runIndex).toBe(0n)
    expect(g.expiresAt).toBe(BigInt(block!.timestamp + GRANT_WINDOW))
    expect(g.fastPath).toBe(false)
    expect(await w.c.accessController.grantMeasurementMatches(grantId, m)).toBe(true)
    expect(await w.c.accessController.grantMeasurementMatches(grantId, bytes32())).toBe(false)
    expect(await w.c.accessController.runCount(capsuleId)).toBe(1n)
    expect(parseEvents(w.c.accessController, receipt, 'FeeEscrowed')).toEqual([])
    expect((await w.c.accessController.getEscrow(grantId)).state).toBe(0n)
  })

  it('reports unknown grants with GrantNotFound', async () => {
    const id = bytes32()
    await expectRevert(w.c.accessController.getGrant(id), 'GrantNotFound', [id])
    await expectRevert(
      w.c.accessController.grantMeasurementMatches(id, ZeroHash),
      'GrantNotFound',
      [id],
    )
  })

  it('gives distinct grant ids for the same key on later runs', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    const key = bytes32()
    const ac = w.c.accessController.connect(w.executor)
    const a = parseEvents(
      ac,
      await send(ac.requestAccess(capsuleId, key, ZeroHash, '0x')),
      'AccessGranted',
    )[0]!
    const b = parseEvents(
      ac,
      await send(ac.requestAccess(capsuleId, key, ZeroHash, '0x')),
      'AccessGranted',
    )[0]!
    expect(a.grantId).not.toBe(b.grantId)
    expect((await w.c.accessController.getGrant(b.grantId)).runIndex).toBe(1n)
  })

  it('reverts with AccessDenied and the policy reason; checkAccess gives the same answer', async () => {
    const m = bytes32()
    const { capsuleId } = await capsuleWith(w, all(environment(m), maxRuns(1)))
    const ac = w.c.accessController.connect(w.executor)
    const key = bytes32()
    const check = (measurement: string) =>
      w.c.accessController.checkAccess(
        capsuleId,
        w.executor.address,
        key,
        measurement,
        0,
        false,
        '0x',
      )
    expect((await check(bytes32())).reason).toBe(BigInt(Reason.WRONG_ENVIRONMENT))
    await expectRevert(ac.requestAccess(capsuleId, key, bytes32(), '0x'), 'AccessDenied', [
      capsuleId,
      w.executor.address,
      BigInt(Reason.WRONG_ENVIRONMENT),
    ])
    expect([...(await check(m))]).toEqual([true, 0n])
    await send(ac.requestAccess(capsuleId, key, m, '0x'))
    expect([...(await check(m))]).toEqual([false, BigInt(Reason.MAX_RUNS_REACHED)])
    await expectRevert(ac.requestAccess(capsuleId, key, m, '0x'), 'AccessDenied', [
      capsuleId,
      w.executor.address,
      BigInt(Reason.MAX_RUNS_REACHED),
    ])
  })

  it('rejects a zero ephemeral key', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    await expectRevert(
      w.c.accessController.connect(w.executor).requestAccess(capsuleId, ZeroHash, ZeroHash, '0x'),
      'InvalidEphemeralKey',
    )
  })

  it('rejects unregistered, verifier-only and under-staked executors', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    const denied = (who: Wallet) =>
      expectRevert(
        w.c.accessController.connect(who).requestAccess(capsuleId, bytes32(), ZeroHash, '0x'),
        'AccessDenied',
        [capsuleId, who.address, BigInt(Reason.EXECUTOR_NOT_REGISTERED)],
      )
    await denied(w.other)
    await send(
      w.c.nodeRegistry
        .connect(w.other)
        .register(peerId(), bytes32(), ROLE_VERIFIER, { value: MIN_STAKE }),
    )
    await denied(w.other)
    await send(w.c.nodeRegistry.connect(w.executor).requestUnbond(1n))
    await denied(w.executor)
  })

  it('rejects unknown and revoked capsules', async () => {
    const ac = w.c.accessController.connect(w.executor)
    const unknown = bytes32()
    await expectRevert(ac.requestAccess(unknown, bytes32(), ZeroHash, '0x'), 'AccessDenied', [
      unknown,
      w.executor.address,
      BigInt(Reason.CAPSULE_NOT_FOUND),
    ])
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    await send(w.c.capsuleRegistry.connect(w.owner).revoke(capsuleId))
    await expectRevert(ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x'), 'AccessDenied', [
      capsuleId,
      w.executor.address,
      BigInt(Reason.CAPSULE_REVOKED),
    ])
  })

  it('maps a reverting policy to POLICY_ERROR and (false, OK) to DENIED', async () => {
    for (const [source, reason] of [
      [REVERTING_POLICY, Reason.POLICY_ERROR],
      [SILENT_DENY_POLICY, Reason.DENIED],
    ] as const) {
      const p = await deployPolicy(
        w.owner,
        { source, contractName: source === REVERTING_POLICY ? 'Reverting' : 'SilentDeny' },
        { nodeRegistry: w.addresses.nodeRegistry },
      )
      const capsuleId = bytes32()
      await send(
        w.c.capsuleRegistry
          .connect(w.owner)
          .register(capsuleId, p.address, CID, bytes32(), peerId(), bytes32()),
      )
      await expectRevert(
        w.c.accessController
          .connect(w.executor)
          .requestAccess(capsuleId, bytes32(), ZeroHash, '0x'),
        'AccessDenied',
        [capsuleId, w.executor.address, BigInt(reason)],
      )
    }
  })

  it('passes job parameters to a bring-your-own policy (custom reason codes)', async () => {
    const p = await deployPolicy(
      w.owner,
      { source: JOB_PARAMS_POLICY, contractName: 'HelloOnly' },
      { nodeRegistry: w.addresses.nodeRegistry },
    )
    const capsuleId = bytes32()
    await send(
      w.c.capsuleRegistry
        .connect(w.owner)
        .register(capsuleId, p.address, CID, bytes32(), peerId(), bytes32()),
    )
    const ac = w.c.accessController.connect(w.executor)
    await expectRevert(ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x01'), 'AccessDenied', [
      capsuleId,
      w.executor.address,
      200n,
    ])
    const hello = `0x${Buffer.from('hello').toString('hex')}`
    await send(ac.requestAccess(capsuleId, bytes32(), ZeroHash, hello))
  })

  it('rejects a fee above 2^128 wei', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    await w.anvil.provider.send('anvil_setBalance', [w.executor.address, toQuantity(2n ** 129n)])
    await expectRevert(
      w.c.accessController
        .connect(w.executor)
        .requestAccess(capsuleId, bytes32(), ZeroHash, '0x', { value: 2n ** 128n }),
      'FeeTooLarge',
      [2n ** 128n],
    )
  })
})

describe('fees in escrow', () => {
  async function paidGrant() {
    const { capsuleId } = await capsuleWith(w, fee('0.01'))
    const ac = w.c.accessController.connect(w.executor)
    await expectRevert(
      ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x', { value: FEE - 1n }),
      'AccessDenied',
      [capsuleId, w.executor.address, BigInt(Reason.FEE_TOO_LOW)],
    )
    const receipt = await send(
      ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x', { value: FEE }),
    )
    const [granted] = parseEvents(ac, receipt, 'AccessGranted')
    const [escrowed] = parseEvents(ac, receipt, 'FeeEscrowed')
    expect(escrowed!.amount).toBe(FEE)
    expect(escrowed!.grantId).toBe(granted!.grantId)
    return { capsuleId, grantId: granted!.grantId }
  }

  it('lets the owner claim an undisputed fee after the dispute window, once', async () => {
    const { grantId } = await paidGrant()
    await expectConserved(w)
    const owned = w.c.accessController.connect(w.owner)
    const escrow = await w.c.accessController.getEscrow(grantId)
    expect(escrow.state).toBe(1n)
    await expectRevert(owned.claimFees([grantId]), 'EscrowLocked', [grantId, escrow.claimableAt])
    await w.anvil.increaseTime(DISPUTE_WINDOW)
    await expectRevert(
      w.c.accessController.connect(w.other).claimFees([grantId]),
      'NotFeeRecipient',
      [grantId, w.other.address],
    )
    const before = await balanceOf(w, w.owner.address)
    const receipt = await send(owned.claimFees([grantId]))
    const gasCost = receipt.gasUsed * receipt.gasPrice
    expect(await balanceOf(w, w.owner.address)).toBe(before + FEE - gasCost)
    expect(parseEvents(owned, receipt, 'FeeClaimed')).toEqual([
      { grantId, owner: w.owner.address, amount: FEE },
    ])
    expect(await w.c.accessController.totalHeld()).toBe(0n)
    await expectConserved(w)
    await expectRevert(owned.claimFees([grantId]), 'WrongEscrowState', [grantId, 3n])
    await expectRevert(owned.claimFees([]), 'NothingToWithdraw')
  })

  it('refuses to claim a grant that paid no fee', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    const ac = w.c.accessController.connect(w.executor)
    const [g] = parseEvents(
      ac,
      await send(ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x')),
      'AccessGranted',
    )
    await expectRevert(
      w.c.accessController.connect(w.owner).claimFees([g!.grantId]),
      'WrongEscrowState',
      [g!.grantId, 0n],
    )
  })

  it('names a settler only through the admin timelock (the direct path is gone)', async () => {
    const ac = w.c.accessController
    const data = ac.interface.encodeFunctionData('setSettler', [w.settler.address, true])
    await expectRevert(ac.setSettler(w.settler.address, true), 'AdminCallNotQueued', [
      keccak256(data),
    ])
    await expectRevert(ac.connect(w.other).queueAdminCall(data), 'NotAdmin', [w.other.address])
    await send(ac.queueAdminCall(data))
    await w.anvil.increaseTime(ADMIN_DELAY - 60)
    await expectRevert(ac.setSettler(w.settler.address, true), 'AdminCallNotReady')
    await w.anvil.increaseTime(60)
    await expectRevert(ac.connect(w.other).setSettler(w.settler.address, true), 'NotAdmin', [
      w.other.address,
    ])
    await send(ac.setSettler(w.settler.address, true))
    expect(await ac.isSettler(w.settler.address)).toBe(true)
    await expectRevert(
      timelocked(w, ac, 'setSettler', [ZeroHash.slice(0, 42), true]),
      'ZeroAddress',
    )
    await send(ac.renounceAdmin())
    await expectRevert(ac.queueAdminCall(data), 'NotAdmin', [w.deployer.address])
  })

  it('refuses an admin delay that does not outlast the dispute window or the withdrawal delay', async () => {
    await expectRevert(
      deployDigicap(w.deployer, {
        disputeWindow: 3600,
        withdrawalDelay: 1800,
        unbondingDelay: 100,
        auditWindow: 60,
        adminDelay: 3600,
      }),
      'DelayTooShort',
      [3600n, 3600n],
    )
  })

  it('lets a settler refund a locked escrow to the executor that paid it (a timeout), once', async () => {
    await timelocked(w, w.c.accessController, 'setSettler', [w.settler.address, true])
    const { grantId } = await paidGrant()
    const settler = w.c.accessController.connect(w.settler)
    await expectRevert(settler.refundEscrow(grantId), 'WrongEscrowState', [grantId, 1n])
    await send(settler.disputeEscrow(grantId))
    await expectRevert(w.c.accessController.connect(w.other).refundEscrow(grantId), 'NotSettler', [
      w.other.address,
    ])
    const r = await send(settler.refundEscrow(grantId))
    expect(parseEvents(settler, r, 'EscrowRefunded')).toEqual([
      { grantId, payer: w.executor.address, amount: FEE },
    ])
    expect(await w.c.accessController.credits(w.executor.address)).toBe(FEE)
    await expectRevert(settler.refundEscrow(grantId), 'WrongEscrowState', [grantId, 4n])
    await expectConserved(w)
  })

  it('lets a settler dispute and split an escrow; the owner cannot claim it', async () => {
    const settler = w.c.accessController.connect(w.settler)
    const early = await paidGrant()
    await expectRevert(settler.disputeEscrow(early.grantId), 'NotSettler', [w.settler.address])
    await timelocked(w, w.c.accessController, 'setSettler', [w.settler.address, true])
    const { grantId } = await paidGrant()
    await expectRevert(
      settler.resolveEscrow(grantId, [w.owner.address], [FEE]),
      'WrongEscrowState',
      [grantId, 1n],
    )
    const disputed = await send(settler.disputeEscrow(grantId))
    expect(parseEvents(settler, disputed, 'EscrowDisputed')).toEqual([
      { grantId, settler: w.settler.address },
    ])
    await expectRevert(settler.disputeEscrow(grantId), 'WrongEscrowState', [grantId, 2n])
    await w.anvil.increaseTime(DISPUTE_WINDOW)
    await expectRevert(
      w.c.accessController.connect(w.owner).claimFees([grantId]),
      'WrongEscrowState',
      [grantId, 2n],
    )
    await expectRevert(settler.resolveEscrow(grantId, [w.owner.address], []), 'LengthMismatch')
    await expectRevert(settler.resolveEscrow(grantId, [], []), 'LengthMismatch')
    await expectRevert(
      settler.resolveEscrow(grantId, [w.owner.address], [FEE - 1n]),
      'PayoutMismatch',
      [FEE - 1n, FEE],
    )
    await expectRevert(
      settler.resolveEscrow(grantId, [ZeroHash.slice(0, 42)], [FEE]),
      'ZeroAddress',
    )
    const third = FEE / 3n
    const receipt = await send(
      settler.resolveEscrow(
        grantId,
        [w.owner.address, w.executor.address, w.settler.address],
        [third, third, FEE - 2n * third],
      ),
    )
    expect(parseEvents(settler, receipt, 'Credited')).toHaveLength(3)
    expect(parseEvents(settler, receipt, 'EscrowResolved')).toEqual([
      { grantId, settler: w.settler.address },
    ])
    expect(await w.c.accessController.credits(w.settler.address)).toBe(FEE - 2n * third)
    await expectConserved(w)
    await send(w.c.accessController.connect(w.owner).withdrawCredit())
    await send(w.c.accessController.connect(w.executor).withdrawCredit())
    await send(settler.withdrawCredit())
    await expectRevert(settler.withdrawCredit(), 'NothingToWithdraw')
    // Only the escrow of the grant made before the settler was named is still held.
    expect(await w.c.accessController.totalHeld()).toBe(FEE)
    await expectConserved(w)
    await timelocked(w, w.c.accessController, 'setSettler', [w.settler.address, false])
    await expectRevert(settler.disputeEscrow(grantId), 'NotSettler', [w.settler.address])
  })

  it('blocks reentrancy into claimFees from the owner contract', async () => {
    const attacker = await deployAttacker(w.owner)
    const attackerAddress = await attacker.getAddress()
    const policy = await deployPolicy(w.owner, fee('0.01'), {
      nodeRegistry: w.addresses.nodeRegistry,
    })
    const capsuleId = bytes32()
    const registry = w.c.capsuleRegistry
    await send(
      attacker.execute!(
        w.addresses.capsuleRegistry,
        registry.interface.encodeFunctionData('register', [
          capsuleId,
          policy.address,
          CID,
          bytes32(),
          peerId(),
          bytes32(),
        ]),
      ),
    )
    const ac = w.c.accessController.connect(w.executor)
    const [g] = parseEvents(
      ac,
      await send(ac.requestAccess(capsuleId, bytes32(), ZeroHash, '0x', { value: FEE })),
      'AccessGranted',
    )
    await w.anvil.increaseTime(DISPUTE_WINDOW)
    const claim = ac.interface.encodeFunctionData('claimFees', [[g!.grantId]])
    await send(attacker.arm!(w.addresses.accessController, claim))
    await send(attacker.execute!(w.addresses.accessController, claim))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(ac.interface.getError('Reentrancy')!.selector)
    expect(await attacker.received!()).toBe(FEE)
    expect(await balanceOf(w, attackerAddress)).toBe(FEE)
    await expectConserved(w)
  })

  it('blocks reentrancy into withdrawDeposit and withdrawCredit', async () => {
    const attacker = await deployAttacker(w.other)
    const ac = w.c.accessController
    await send(
      attacker.execute!(w.addresses.accessController, ac.interface.encodeFunctionData('deposit'), {
        value: FEE,
      }),
    )
    await send(
      attacker.execute!(
        w.addresses.accessController,
        ac.interface.encodeFunctionData('requestWithdrawal', [FEE / 2n]),
      ),
    )
    await w.anvil.increaseTime(WITHDRAWAL_DELAY)
    const withdraw = ac.interface.encodeFunctionData('withdrawDeposit')
    await send(attacker.arm!(w.addresses.accessController, withdraw))
    await send(attacker.execute!(w.addresses.accessController, withdraw))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(ac.interface.getError('Reentrancy')!.selector)
    expect(await ac.deposits(await attacker.getAddress())).toBe(FEE / 2n)
    await expectConserved(w)

    await timelocked(w, ac, 'setSettler', [w.settler.address, true])
    const { grantId } = await paidGrant()
    await send(ac.connect(w.settler).disputeEscrow(grantId))
    await send(ac.connect(w.settler).resolveEscrow(grantId, [await attacker.getAddress()], [FEE]))
    const credit = ac.interface.encodeFunctionData('withdrawCredit')
    await send(attacker.arm!(w.addresses.accessController, credit))
    await send(attacker.execute!(w.addresses.accessController, credit))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(ac.interface.getError('Reentrancy')!.selector)
    expect(await ac.credits(await attacker.getAddress())).toBe(0n)
    await expectConserved(w)
  })

  it('reverts with TransferFailed when the recipient refuses ETH', async () => {
    // A policy contract has no receive(): impersonate it as a depositor whose withdrawal bounces.
    const refuser = (
      await deployPolicy(w.owner, maxRuns(1), { nodeRegistry: w.addresses.nodeRegistry })
    ).address
    await w.anvil.provider.send('anvil_setBalance', [refuser, toQuantity(FEE)])
    await w.anvil.provider.send('anvil_impersonateAccount', [refuser])
    const impersonated = await w.anvil.provider.getSigner(refuser)
    await send(w.c.accessController.connect(impersonated).deposit({ value: FEE / 2n }))
    await send(w.c.accessController.connect(impersonated).requestWithdrawal(FEE / 2n))
    await w.anvil.increaseTime(WITHDRAWAL_DELAY)
    await expectRevert(
      w.c.accessController.connect(impersonated).withdrawDeposit(),
      'TransferFailed',
      [refuser, FEE / 2n],
    )
    await w.anvil.provider.send('anvil_stopImpersonatingAccount', [refuser])
    await expectConserved(w)
  })
})

describe('deposits', () => {
  it('takes and returns deposits, with typed errors for zero and overdraw', async () => {
    const ac = w.c.accessController.connect(w.executor)
    await expectRevert(ac.deposit({ value: 0 }), 'ZeroAmount')
    const r = await send(ac.deposit({ value: FEE }))
    expect(parseEvents(ac, r, 'Deposited')).toEqual([
      { account: w.executor.address, amount: FEE, balance: FEE },
    ])
    await expectRevert(ac.requestWithdrawal(0), 'ZeroAmount')
    await expectRevert(ac.requestWithdrawal(FEE + 1n), 'InsufficientDeposit', [FEE + 1n, FEE])
    await expectRevert(ac.withdrawDeposit(), 'NothingToWithdraw')
    const asked = await send(ac.requestWithdrawal(FEE / 4n))
    const [first] = parseEvents(ac, asked, 'WithdrawalRequested')
    expect(first!.amount).toBe(FEE / 4n)
    await expectRevert(ac.withdrawDeposit(), 'WithdrawalLocked', [first!.releaseAt])
    // A second request adds up and restarts the clock for the whole amount.
    await w.anvil.increaseTime(WITHDRAWAL_DELAY / 2)
    const again = await send(ac.requestWithdrawal(FEE / 4n))
    const [second] = parseEvents(ac, again, 'WithdrawalRequested')
    expect(second!.amount).toBe(FEE / 2n)
    expect(second!.releaseAt).toBeGreaterThan(first!.releaseAt)
    await expectRevert(ac.requestWithdrawal(FEE / 2n + 1n), 'InsufficientDeposit', [FEE + 1n, FEE])
    expect(await ac.unlockedDeposit(w.executor.address)).toBe(FEE / 2n)
    await w.anvil.increaseTime(WITHDRAWAL_DELAY / 2 + 1)
    await expectRevert(ac.withdrawDeposit(), 'WithdrawalLocked', [second!.releaseAt])
    await w.anvil.increaseTime(WITHDRAWAL_DELAY / 2)
    const out = await send(ac.withdrawDeposit())
    expect(parseEvents(ac, out, 'DepositWithdrawn')).toEqual([
      { account: w.executor.address, amount: FEE / 2n, balance: FEE / 2n },
    ])
    expect([...(await ac.pendingWithdrawals(w.executor.address))]).toEqual([0n, 0n])
    await expectRevert(ac.withdrawDeposit(), 'NothingToWithdraw')
    await expectConserved(w)
  })

  it('cancels a pending withdrawal, unlocking the whole deposit again', async () => {
    const ac = w.c.accessController.connect(w.executor)
    await send(ac.deposit({ value: FEE }))
    await expectRevert(ac.cancelWithdrawal(), 'NothingToWithdraw')
    await send(ac.requestWithdrawal(FEE))
    expect(await ac.unlockedDeposit(w.executor.address)).toBe(0n)
    const r = await send(ac.cancelWithdrawal())
    expect(parseEvents(ac, r, 'WithdrawalCancelled')).toEqual([
      { account: w.executor.address, amount: FEE },
    ])
    expect(await ac.unlockedDeposit(w.executor.address)).toBe(FEE)
    await w.anvil.increaseTime(WITHDRAWAL_DELAY)
    await expectRevert(ac.withdrawDeposit(), 'NothingToWithdraw')
  })

  it('refuses to deploy with a withdrawal or unbonding delay that does not outlast the audit window', async () => {
    await expectRevert(
      deployDigicap(w.deployer, { auditWindow: 600, withdrawalDelay: 600 }),
      'DelayTooShort',
      [600n, 600n],
    )
    await expectRevert(
      deployDigicap(w.deployer, { auditWindow: 600, withdrawalDelay: 3600, unbondingDelay: 600 }),
      'DelayTooShort',
      [600n, 600n],
    )
  })
})

describe('recordFastPathGrant (fast path)', () => {
  async function signed(
    capsuleId: string,
    overrides: Partial<SignedAccessRequest> = {},
    signer: Wallet = w.executor,
  ) {
    const req: SignedAccessRequest = {
      capsuleId,
      executor: w.executor.address,
      ephemeralKey: bytes32(),
      measurement: ZeroHash,
      jobParamsHash: jobParamsHash('0x'),
      fee: 0n,
      nonce: BigInt(bytes32()),
      expiry: BigInt((await now()) + 300),
      ...overrides,
    }
    const domain = accessRequestDomain(w.anvil.chainId, w.addresses.accessController)
    return { req, signature: await signer.signTypedData(domain, ACCESS_REQUEST_TYPES, req), domain }
  }

  it('records a grant served off-chain: AccessGranted(fastPath=true), counted toward maxRuns', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(2))
    const { req, signature, domain } = await signed(capsuleId)
    expect(await w.c.accessController.hashSignedRequest(req)).toBe(hashAccessRequest(domain, req))
    expect(
      recoverTypedDataSigner(
        { domain, types: ACCESS_REQUEST_TYPES, primaryType: 'AccessRequest', message: { ...req } },
        signature as `0x${string}`,
      ),
    ).toBe(w.executor.address)
    const check = await w.c.accessController.checkAccess(
      capsuleId,
      req.executor,
      req.ephemeralKey,
      req.measurement,
      0,
      true,
      '0x',
    )
    expect([...check]).toEqual([true, 0n])
    const ac = w.c.accessController.connect(w.owner)
    const receipt = await send(ac.recordFastPathGrant(req, '0x', signature))
    const [ev] = parseEvents(ac, receipt, 'AccessGranted')
    expect(ev!.fastPath).toBe(true)
    expect(ev!.executor).toBe(w.executor.address)
    expect((await ac.getGrant(ev!.grantId)).fastPath).toBe(true)
    expect(await ac.nonceUsed(req.executor, req.capsuleId, req.nonce)).toBe(true)
    await expectRevert(ac.recordFastPathGrant(req, '0x', signature), 'NonceUsed', [
      req.executor,
      req.nonce,
    ])
    await send(
      w.c.accessController.connect(w.executor).requestAccess(capsuleId, bytes32(), ZeroHash, '0x'),
    )
    // A third key released on an earlier checkAccess (runs 1 of 2) whose audit lands after a
    // chain grant took the last run: recorded as an overrun, the run counted (ADR 0073).
    expect(await ac.overrunRunCount(capsuleId)).toBe(0n)
    const third = await signed(capsuleId)
    const over = await send(ac.recordFastPathGrant(third.req, '0x', third.signature))
    const [g3] = parseEvents(ac, over, 'AccessGranted')
    const [o] = parseEvents(ac, over, 'FastPathOverrun')
    expect([o!.capsuleId, o!.grantId, Number(o!.reason)]).toEqual([
      capsuleId,
      g3!.grantId,
      Reason.MAX_RUNS_REACHED,
    ])
    expect((await ac.getGrant(g3!.grantId)).runIndex).toBe(2n)
    expect(await ac.runCount(capsuleId)).toBe(3n)
    expect(await ac.overrunRunCount(capsuleId)).toBe(3n)
    expect(await ac.nonceUsed(third.req.executor, capsuleId, third.req.nonce)).toBe(true)
    // The other checks still hold: a replay, and the chain path past maxRuns, revert.
    await expectRevert(ac.recordFastPathGrant(third.req, '0x', third.signature), 'NonceUsed', [
      third.req.executor,
      third.req.nonce,
    ])
    await expectRevert(
      w.c.accessController.connect(w.executor).requestAccess(capsuleId, bytes32(), ZeroHash, '0x'),
      'AccessDenied',
      [capsuleId, w.executor.address, BigInt(Reason.MAX_RUNS_REACHED)],
    )
    // A revoked capsule still refuses the audit (the run would not be counted).
    await send(w.c.capsuleRegistry.connect(w.owner).revoke(capsuleId))
    const fourth = await signed(capsuleId)
    await expectRevert(ac.recordFastPathGrant(fourth.req, '0x', fourth.signature), 'AccessDenied', [
      capsuleId,
      w.executor.address,
      BigInt(Reason.CAPSULE_REVOKED),
    ])
  })

  it('takes the fee from the executor deposit into escrow', async () => {
    const { capsuleId } = await capsuleWith(w, fee('0.01'))
    const { req, signature } = await signed(capsuleId, { fee: FEE })
    const ac = w.c.accessController.connect(w.owner)
    expect(
      (
        await w.c.accessController.checkAccess(
          capsuleId,
          req.executor,
          req.ephemeralKey,
          ZeroHash,
          FEE,
          true,
          '0x',
        )
      ).reason,
    ).toBe(BigInt(Reason.INSUFFICIENT_DEPOSIT))
    // (An audit the deposit does not cover draws from stake instead of reverting:
    // audit-race.test.ts, "one executor, several keyguards".)
    await send(w.c.accessController.connect(w.executor).deposit({ value: FEE * 2n }))
    const receipt = await send(ac.recordFastPathGrant(req, '0x', signature))
    const [escrowed] = parseEvents(ac, receipt, 'FeeEscrowed')
    expect(escrowed!.amount).toBe(FEE)
    expect(parseEvents(ac, receipt, 'FastPathOverrun')).toHaveLength(0)
    expect(await ac.deposits(w.executor.address)).toBe(FEE)
    expect(await ac.totalHeld()).toBe(FEE * 2n)
    // A fee below the policy's, signed by the executor and recorded by the keyguard anyway
    // (its own checkAccess refuses it): an overrun, paid with the fee signed (ADR 0073).
    const low = await signed(capsuleId, { fee: FEE - 1n })
    const lowReceipt = await send(ac.recordFastPathGrant(low.req, '0x', low.signature))
    const [lowOverrun] = parseEvents(ac, lowReceipt, 'FastPathOverrun')
    expect(Number(lowOverrun!.reason)).toBe(Reason.FEE_TOO_LOW)
    expect(parseEvents(ac, lowReceipt, 'FeeEscrowed')[0]!.amount).toBe(FEE - 1n)
    expect(await ac.deposits(w.executor.address)).toBe(1n)
    expect(await ac.totalHeld()).toBe(FEE * 2n)
    await expectConserved(w)
  })

  it('accepts an operator the owner named, and no one else', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    const { req, signature } = await signed(capsuleId)
    await expectRevert(
      w.c.accessController.connect(w.other).recordFastPathGrant(req, '0x', signature),
      'NotKeyguard',
      [capsuleId, w.other.address],
    )
    await send(w.c.capsuleRegistry.connect(w.owner).setOperator(w.other.address, true))
    await send(w.c.accessController.connect(w.other).recordFastPathGrant(req, '0x', signature))
    await send(w.c.capsuleRegistry.connect(w.owner).setOperator(w.other.address, false))
    const next = await signed(capsuleId)
    await expectRevert(
      w.c.accessController.connect(w.other).recordFastPathGrant(next.req, '0x', next.signature),
      'NotKeyguard',
    )
    const unknown = await signed(bytes32())
    await expectRevert(
      w.c.accessController
        .connect(w.owner)
        .recordFastPathGrant(unknown.req, '0x', unknown.signature),
      'NotKeyguard',
      [unknown.req.capsuleId, w.owner.address],
    )
  })

  it('rejects expired, mismatched and badly signed requests', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(50))
    const ac = w.c.accessController.connect(w.owner)
    const expired = await signed(capsuleId, { expiry: BigInt((await now()) - 1) })
    await expectRevert(
      ac.recordFastPathGrant(expired.req, '0x', expired.signature),
      'SignedRequestExpired',
      [expired.req.expiry],
    )
    const ok = await signed(capsuleId)
    await expectRevert(ac.recordFastPathGrant(ok.req, '0x01', ok.signature), 'JobParamsMismatch')
    const byOther = await signed(capsuleId, {}, w.other)
    await expectRevert(
      ac.recordFastPathGrant(byOther.req, '0x', byOther.signature),
      'InvalidSignature',
    )
    await expectRevert(
      ac.recordFastPathGrant(ok.req, '0x', ok.signature.slice(0, -2)),
      'InvalidSignature',
    )
    const sig = Signature.from(ok.signature)
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const highS = concat([sig.r, toBeHex(n - BigInt(sig.s), 32), sig.v === 27 ? '0x1c' : '0x1b'])
    await expectRevert(ac.recordFastPathGrant(ok.req, '0x', highS), 'InvalidSignature')
    const badV = concat([sig.r, sig.s, '0x05'])
    await expectRevert(ac.recordFastPathGrant(ok.req, '0x', badV), 'InvalidSignature')
    const garbage = concat([ZeroHash, ZeroHash, '0x1b'])
    await expectRevert(ac.recordFastPathGrant(ok.req, '0x', garbage), 'InvalidSignature')
    const tampered = { ...ok.req, ephemeralKey: bytes32() }
    await expectRevert(ac.recordFastPathGrant(tampered, '0x', ok.signature), 'InvalidSignature')
    await send(ac.recordFastPathGrant(ok.req, '0x', ok.signature))
  })
})

describe('admin', () => {
  it('hands over the admin role only from the admin, through the timelock, never to zero', async () => {
    const ac = w.c.accessController
    await expectRevert(ac.connect(w.other).setAdmin(w.other.address), 'NotAdmin', [w.other.address])
    // Timelocked like every change of who holds power.
    await expectRevert(ac.setAdmin(w.other.address), 'AdminCallNotQueued')
    await expectRevert(timelocked(w, ac, 'setAdmin', [ZeroHash.slice(0, 42)]), 'ZeroAddress')
    const r = await timelocked(w, ac, 'setAdmin', [w.other.address])
    expect(parseEvents(ac, r, 'AdminChanged')).toEqual([
      { previousAdmin: w.deployer.address, newAdmin: w.other.address },
    ])
    expect(await ac.admin()).toBe(w.other.address)
  })
})
