import { ContractFactory, parseEther, toQuantity, ZeroAddress, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { parseEvents } from '../src/events.ts'
import { nodeRegistryAbi, nodeRegistryBytecode } from '../src/generated/artifacts.ts'
import { POLICY_LIMITS } from '../src/policy/expression.ts'
import {
  balanceOf,
  bytes32,
  deployAttacker,
  expectConserved,
  expectRevert,
  MIN_STAKE,
  peerId,
  ROLE_EXECUTOR,
  ROLE_VERIFIER,
  send,
  UNBONDING_DELAY,
  useWorld,
  type World,
} from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const ONE = parseEther('1')

describe('NodeRegistry registration', () => {
  it('registers a node with stake, peer id, attestation key hash and roles', async () => {
    const nr = w.c.nodeRegistry.connect(w.other)
    const pid = peerId()
    const akh = bytes32()
    const r = await send(nr.register(pid, akh, ROLE_EXECUTOR | ROLE_VERIFIER, { value: ONE }))
    expect(parseEvents(nr, r, 'NodeRegistered')).toEqual([
      { node: w.other.address, roles: 3n, peerId: pid, attestationKeyHash: akh, stake: ONE },
    ])
    const n = await nr.getNode(w.other.address)
    expect(n.stake).toBe(ONE)
    expect(n.reputation).toBe(1n)
    expect(n.roles).toBe(3n)
    expect(n.registered).toBe(true)
    expect(n.peerId).toBe(pid)
    expect(n.attestationKeyHash).toBe(akh)
    expect(await nr.isActive(w.other.address, ROLE_EXECUTOR)).toBe(true)
    expect(await nr.isActive(w.other.address, ROLE_VERIFIER)).toBe(true)
    expect(await nr.isActive(w.other.address, 0)).toBe(false)
    expect(await nr.reputationOf(w.other.address)).toBe(1n)
    expect(await nr.INITIAL_REPUTATION()).toBe(1n)
    expect(await nr.reputationOf(w.deployer.address)).toBe(0n)
    await expectConserved(w)
  })

  it('rejects double registration, bad roles, bad peer ids and low stake', async () => {
    const nr = w.c.nodeRegistry.connect(w.other)
    await expectRevert(nr.register(peerId(), bytes32(), 0, { value: ONE }), 'InvalidRoles', [0n])
    await expectRevert(nr.register(peerId(), bytes32(), 4, { value: ONE }), 'InvalidRoles', [4n])
    await expectRevert(nr.register('0x', bytes32(), 1, { value: ONE }), 'InvalidPeerId', [0n])
    await expectRevert(
      nr.register(`0x${'ab'.repeat(129)}`, bytes32(), 1, { value: ONE }),
      'InvalidPeerId',
      [129n],
    )
    await expectRevert(
      nr.register(peerId(), bytes32(), 1, { value: MIN_STAKE - 1n }),
      'StakeTooLow',
      [MIN_STAKE - 1n, MIN_STAKE],
    )
    await expectRevert(
      w.c.nodeRegistry.connect(w.executor).register(peerId(), bytes32(), 1, { value: ONE }),
      'AlreadyRegistered',
      [w.executor.address],
    )
  })

  it('updates the profile and adds stake; unknown nodes get NotRegistered', async () => {
    const nr = w.c.nodeRegistry.connect(w.executor)
    const pid = peerId()
    const akh = bytes32()
    const r = await send(nr.update(pid, akh, ROLE_VERIFIER))
    expect(parseEvents(nr, r, 'NodeUpdated')).toEqual([
      { node: w.executor.address, roles: 2n, peerId: pid, attestationKeyHash: akh },
    ])
    expect(await nr.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(false)
    await expectRevert(nr.update(pid, akh, 0), 'InvalidRoles', [0n])
    await expectRevert(nr.addStake({ value: 0 }), 'ZeroAmount')
    const s = await send(nr.addStake({ value: ONE }))
    expect(parseEvents(nr, s, 'StakeAdded')).toEqual([
      { node: w.executor.address, amount: ONE, stake: ONE + MIN_STAKE },
    ])
    const stranger = w.c.nodeRegistry.connect(w.other)
    await expectRevert(stranger.update(pid, akh, 1), 'NotRegistered', [w.other.address])
    await expectRevert(stranger.addStake({ value: 1 }), 'NotRegistered', [w.other.address])
    await expectRevert(stranger.requestUnbond(1), 'NotRegistered', [w.other.address])
    await expectRevert(stranger.withdraw(), 'NotRegistered', [w.other.address])
    await expectConserved(w)
  })
})

describe('NodeRegistry attestation records (one node per record hash)', () => {
  // A node that registers another node's attestation record could relay a verifier's challenges
  // to that node's TPM and pass as attested: a record hash belongs to the first node that uses it.
  it('refuses a record hash another node registered, on register and on update', async () => {
    const taken = (await w.c.nodeRegistry.getNode(w.executor.address)).attestationKeyHash
    expect(await w.c.nodeRegistry.attestationKeyOwner(taken)).toBe(w.executor.address)
    const relay = w.c.nodeRegistry.connect(w.other)
    await expectRevert(
      relay.register(peerId(), taken, ROLE_EXECUTOR, { value: ONE }),
      'AttestationKeyTaken',
      [taken, w.executor.address],
    )
    const own = bytes32()
    await send(relay.register(peerId(), own, ROLE_EXECUTOR, { value: ONE }))
    await expectRevert(relay.update(peerId(), taken, ROLE_EXECUTOR), 'AttestationKeyTaken', [
      taken,
      w.executor.address,
    ])
    expect((await relay.getNode(w.other.address)).attestationKeyHash).toBe(own)
    await expectConserved(w)
  })

  it('keeps a claim when its node moves to another record, and never claims the zero hash', async () => {
    const nr = w.c.nodeRegistry.connect(w.executor)
    const first = (await nr.getNode(w.executor.address)).attestationKeyHash
    const second = bytes32()
    await send(nr.update(peerId(), second, ROLE_EXECUTOR))
    await send(nr.update(peerId(), first, ROLE_EXECUTOR)) // its own record again
    await send(nr.update(peerId(), ZeroHash, ROLE_EXECUTOR))
    const relay = w.c.nodeRegistry.connect(w.other)
    await expectRevert(
      relay.register(peerId(), second, ROLE_EXECUTOR, { value: ONE }),
      'AttestationKeyTaken',
      [second, w.executor.address],
    )
    expect(await nr.attestationKeyOwner(ZeroHash)).toBe(ZeroAddress)
    await send(relay.register(peerId(), ZeroHash, ROLE_EXECUTOR, { value: ONE }))
    expect(await nr.attestationKeyOwner(ZeroHash)).toBe(ZeroAddress)
  })
})

describe('NodeRegistry limits', () => {
  it('rejects stakes above 2^128 wei and a zero admin', async () => {
    await w.anvil.provider.send('anvil_setBalance', [w.other.address, toQuantity(2n ** 130n)])
    const nr = w.c.nodeRegistry.connect(w.other)
    await expectRevert(
      nr.register(peerId(), bytes32(), 1, { value: 2n ** 128n }),
      'AmountTooLarge',
      [2n ** 128n],
    )
    const factory = new ContractFactory(nodeRegistryAbi, nodeRegistryBytecode, w.deployer)
    await expectRevert(factory.deploy(ZeroAddress, 1, 1), 'ZeroAddress')
  })
})

describe('NodeRegistry unbonding', () => {
  it('releases stake only after the unbonding delay', async () => {
    const nr = w.c.nodeRegistry.connect(w.executor)
    await send(nr.addStake({ value: ONE }))
    await expectRevert(nr.requestUnbond(0), 'ZeroAmount')
    await expectRevert(nr.requestUnbond(ONE * 2n), 'InsufficientStake', [ONE * 2n, ONE + MIN_STAKE])
    await expectRevert(nr.withdraw(), 'NothingToWithdraw')
    const r = await send(nr.requestUnbond(ONE))
    const [ev] = parseEvents(nr, r, 'UnbondRequested')
    const block = await w.anvil.provider.getBlock(r.blockNumber)
    expect(ev!.releaseAt).toBe(BigInt(block!.timestamp + UNBONDING_DELAY))
    await expectRevert(nr.withdraw(), 'StillUnbonding', [ev!.releaseAt])
    expect(await nr.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(true)
    await w.anvil.increaseTime(UNBONDING_DELAY)
    const before = await balanceOf(w, w.executor.address)
    const out = await send(nr.withdraw())
    expect(await balanceOf(w, w.executor.address)).toBe(before + ONE - out.gasUsed * out.gasPrice)
    expect(parseEvents(nr, out, 'Withdrawn')).toEqual([{ node: w.executor.address, amount: ONE }])
    await expectRevert(nr.withdraw(), 'NothingToWithdraw')
    await expectConserved(w)
  })

  it('blocks reentrancy into withdraw', async () => {
    const attacker = await deployAttacker(w.other)
    const nr = w.c.nodeRegistry
    const call = (data: string, value = 0n) =>
      attacker.execute!(w.addresses.nodeRegistry, data, { value })
    await send(call(nr.interface.encodeFunctionData('register', [peerId(), bytes32(), 1]), ONE))
    await send(call(nr.interface.encodeFunctionData('requestUnbond', [ONE])))
    await w.anvil.increaseTime(UNBONDING_DELAY)
    const withdraw = nr.interface.encodeFunctionData('withdraw')
    await send(attacker.arm!(w.addresses.nodeRegistry, withdraw))
    await send(call(withdraw))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(nr.interface.getError('Reentrancy')!.selector)
    expect(await attacker.received!()).toBe(ONE)
    await expectConserved(w)
  })
})

describe('NodeRegistry managers: reputation and slashing', () => {
  it('lets only managers adjust reputation, clamped to [0, 1000]', async () => {
    const nr = w.c.nodeRegistry
    await expectRevert(nr.connect(w.other).adjustReputation(w.executor.address, 1), 'NotManager', [
      w.other.address,
    ])
    await expectRevert(nr.connect(w.other).setManager(w.other.address, true), 'NotAdmin', [
      w.other.address,
    ])
    await expectRevert(nr.setManager(ZeroAddress, true), 'ZeroAddress')
    const set = await send(nr.setManager(w.settler.address, true))
    expect(parseEvents(nr, set, 'ManagerSet')).toEqual([
      { account: w.settler.address, allowed: true },
    ])
    const m = nr.connect(w.settler)
    const r = await send(m.adjustReputation(w.executor.address, -30))
    expect(parseEvents(nr, r, 'ReputationChanged')).toEqual([
      { node: w.executor.address, previous: 1n, current: 0n, manager: w.settler.address },
    ])
    await send(m.adjustReputation(w.executor.address, -(2n ** 255n)))
    expect(await nr.reputationOf(w.executor.address)).toBe(0n)
    await send(m.adjustReputation(w.executor.address, 2n ** 255n - 1n))
    expect(await nr.reputationOf(w.executor.address)).toBe(1000n)
    expect(await nr.MAX_REPUTATION()).toBe(BigInt(POLICY_LIMITS.maxReputation))
    await send(m.adjustReputation(w.executor.address, 5))
    expect(await nr.reputationOf(w.executor.address)).toBe(1000n)
    await expectRevert(m.adjustReputation(w.other.address, 1), 'NotRegistered', [w.other.address])
    await send(nr.setManager(w.settler.address, false))
    await expectRevert(m.adjustReputation(w.executor.address, 1), 'NotManager', [w.settler.address])
  })

  it('slashes stake then unbonding funds, credits the recipient, and conserves funds', async () => {
    const nr = w.c.nodeRegistry
    await send(nr.setManager(w.settler.address, true))
    const m = nr.connect(w.settler)
    const node = nr.connect(w.executor)
    await send(node.addStake({ value: ONE }))
    await send(node.requestUnbond(ONE))
    const reason = bytes32()
    await expectRevert(m.slash(w.executor.address, 0, w.settler.address, reason), 'ZeroAmount')
    await expectRevert(m.slash(w.executor.address, 1, ZeroAddress, reason), 'ZeroAddress')
    await expectRevert(m.slash(w.other.address, 1, w.settler.address, reason), 'NotRegistered', [
      w.other.address,
    ])
    await expectRevert(
      nr.connect(w.other).slash(w.executor.address, 1, w.other.address, reason),
      'NotManager',
      [w.other.address],
    )
    const half = ONE / 2n
    const r = await send(m.slash(w.executor.address, MIN_STAKE + half, w.other.address, reason))
    expect(parseEvents(nr, r, 'Slashed')).toEqual([
      {
        node: w.executor.address,
        amount: MIN_STAKE + half,
        recipient: w.other.address,
        reason,
        manager: w.settler.address,
      },
    ])
    let n = await nr.getNode(w.executor.address)
    expect(n.stake).toBe(0n)
    expect(n.unbonding).toBe(half)
    expect(await nr.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(false)
    const capped = await m.slash.staticCall(w.executor.address, ONE * 5n, w.other.address, ZeroHash)
    expect(capped).toBe(half)
    await send(m.slash(w.executor.address, ONE * 5n, w.other.address, ZeroHash))
    n = await nr.getNode(w.executor.address)
    expect(n.unbonding).toBe(0n)
    expect(await nr.payouts(w.other.address)).toBe(ONE + MIN_STAKE)
    await expectConserved(w)
    const before = await balanceOf(w, w.other.address)
    const c = await send(nr.connect(w.other).claimPayout())
    expect(parseEvents(nr, c, 'PayoutClaimed')).toEqual([
      { recipient: w.other.address, amount: ONE + MIN_STAKE },
    ])
    expect(await balanceOf(w, w.other.address)).toBe(
      before + ONE + MIN_STAKE - c.gasUsed * c.gasPrice,
    )
    await expectRevert(nr.connect(w.other).claimPayout(), 'NothingToWithdraw')
    expect(await nr.totalHeld()).toBe(0n)
    await expectConserved(w)
  })

  it('blocks reentrancy into claimPayout', async () => {
    const nr = w.c.nodeRegistry
    const attacker = await deployAttacker(w.other)
    const target = await attacker.getAddress()
    await send(nr.setManager(w.settler.address, true))
    await send(nr.connect(w.settler).slash(w.executor.address, MIN_STAKE, target, ZeroHash))
    const claim = nr.interface.encodeFunctionData('claimPayout')
    await send(attacker.arm!(w.addresses.nodeRegistry, claim))
    await send(attacker.execute!(w.addresses.nodeRegistry, claim))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(nr.interface.getError('Reentrancy')!.selector)
    expect(await attacker.received!()).toBe(MIN_STAKE)
    await expectConserved(w)
  })
})
