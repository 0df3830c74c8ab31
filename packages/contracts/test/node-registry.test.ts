import { ContractFactory, keccak256, parseEther, toQuantity, ZeroAddress, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { parseEvents } from '../src/events.ts'
import { nodeRegistryAbi, nodeRegistryBytecode } from '../src/generated/artifacts.ts'
import { POLICY_LIMITS } from '../src/policy/expression.ts'
import {
  ADMIN_DELAY,
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
  timelocked,
  UNBONDING_DELAY,
  useWorld,
  type World,
} from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const ONE = parseEther('1')
const ALL = 10_000 // recipientBps: the whole slash to the recipient

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
    await expectRevert(factory.deploy(ZeroAddress, 1, 1, 2, []), 'ZeroAddress')
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

describe('NodeRegistry managers: evidence only, named through the admin timelock', () => {
  it('names a manager only through the timelock: not directly, not early, not twice, not by a stranger', async () => {
    const nr = w.c.nodeRegistry
    // The old direct path is gone: the admin's own setManager reverts until it was queued.
    const data = nr.interface.encodeFunctionData('setManager', [w.settler.address, true])
    const callHash = keccak256(data)
    await expectRevert(nr.setManager(w.settler.address, true), 'AdminCallNotQueued', [callHash])
    await expectRevert(nr.connect(w.other).queueAdminCall(data), 'NotAdmin', [w.other.address])
    const q = await send(nr.queueAdminCall(data))
    const [queued] = parseEvents(nr, q, 'AdminCallQueued')
    const block = await w.anvil.provider.getBlock(q.blockNumber)
    expect(queued).toEqual({ callHash, data, readyAt: BigInt(block!.timestamp + ADMIN_DELAY) })
    expect(await nr.adminDelay()).toBe(BigInt(ADMIN_DELAY))
    await expectRevert(nr.setManager(w.settler.address, true), 'AdminCallNotReady', [
      callHash,
      queued!.readyAt,
    ])
    await w.anvil.provider.send('evm_increaseTime', [ADMIN_DELAY])
    await expectRevert(nr.connect(w.other).setManager(w.settler.address, true), 'NotAdmin', [
      w.other.address,
    ])
    const set = await send(nr.setManager(w.settler.address, true))
    expect(parseEvents(nr, set, 'ManagerSet')).toEqual([
      { account: w.settler.address, allowed: true },
    ])
    expect(await nr.isManager(w.settler.address)).toBe(true)
    // Used once: the same calldata must be queued again.
    await expectRevert(nr.setManager(w.settler.address, true), 'AdminCallNotQueued', [callHash])
    // A queued call can be cancelled before it is sent.
    const revoke = nr.interface.encodeFunctionData('setManager', [w.settler.address, false])
    await send(nr.queueAdminCall(revoke))
    await send(nr.cancelAdminCall(keccak256(revoke)))
    await w.anvil.provider.send('evm_increaseTime', [ADMIN_DELAY])
    await expectRevert(nr.setManager(w.settler.address, false), 'AdminCallNotQueued', [
      keccak256(revoke),
    ])
  })

  it('renounceAdmin ends admin power: queued calls can never be sent, nothing can be queued', async () => {
    const nr = w.c.nodeRegistry
    const data = nr.interface.encodeFunctionData('setManager', [w.other.address, true])
    await send(nr.queueAdminCall(data))
    await expectRevert(nr.connect(w.other).renounceAdmin(), 'NotAdmin', [w.other.address])
    const r = await send(nr.renounceAdmin())
    expect(parseEvents(nr, r, 'AdminChanged')).toEqual([
      { previousAdmin: w.deployer.address, newAdmin: ZeroAddress },
    ])
    expect(await nr.admin()).toBe(ZeroAddress)
    await w.anvil.provider.send('evm_increaseTime', [ADMIN_DELAY])
    await expectRevert(nr.setManager(w.other.address, true), 'NotAdmin', [w.deployer.address])
    await expectRevert(nr.queueAdminCall(data), 'NotAdmin', [w.deployer.address])
    await expectRevert(nr.setAdmin(w.deployer.address), 'NotAdmin', [w.deployer.address])
  })

  it('refuses an admin delay that does not outlast the unbonding delay (a node could not leave first)', async () => {
    const factory = new ContractFactory(nodeRegistryAbi, nodeRegistryBytecode, w.deployer)
    await expectRevert(factory.deploy(w.deployer.address, 1, 100, 100, []), 'DelayTooShort', [
      100n,
      100n,
    ])
  })

  it('moves reputation only along the curve: a pass from 1 takes 41 passes to 50, a fail halves, an equivocation zeroes', async () => {
    const nr = w.c.nodeRegistry
    await expectRevert(nr.connect(w.other).recordPass(w.executor.address), 'NotManager', [
      w.other.address,
    ])
    await timelocked(w, nr, 'setManager', [w.settler.address, true])
    const m = nr.connect(w.settler)
    const first = await send(m.recordPass(w.executor.address))
    expect(parseEvents(nr, first, 'ReputationChanged')).toEqual([
      { node: w.executor.address, previous: 1n, current: 2n, manager: w.settler.address },
    ])
    for (let i = 1; i < 40; i++) await send(m.recordPass(w.executor.address))
    // +1 a pass while r·(1000 − r) < 32,000 (r < 33), then +2: 40 passes reach 48, the 41st 50.
    expect(await nr.reputationOf(w.executor.address)).toBe(48n)
    await send(m.recordPass(w.executor.address))
    expect(await nr.reputationOf(w.executor.address)).toBe(50n)
    // A fail verdict halves (and slashes nothing when asked nothing).
    const fail = await send(
      m.recordFault(w.executor.address, false, 0, w.owner.address, ALL, ZeroHash),
    )
    expect(parseEvents(nr, fail, 'ReputationChanged')).toEqual([
      { node: w.executor.address, previous: 50n, current: 25n, manager: w.settler.address },
    ])
    expect(parseEvents(nr, fail, 'Slashed')).toEqual([])
    await send(m.recordFault(w.executor.address, true, 0, w.owner.address, ALL, ZeroHash))
    expect(await nr.reputationOf(w.executor.address)).toBe(0n)
    await expectRevert(m.recordPass(w.other.address), 'NotRegistered', [w.other.address])
    expect(await nr.MAX_REPUTATION()).toBe(BigInt(POLICY_LIMITS.maxReputation))
  })

  it('slashes stake then unbonding funds on a fault, credits the recipient, and conserves funds', async () => {
    const nr = w.c.nodeRegistry
    await timelocked(w, nr, 'setManager', [w.settler.address, true])
    const m = nr.connect(w.settler)
    const node = nr.connect(w.executor)
    await send(node.addStake({ value: ONE }))
    await send(node.requestUnbond(ONE))
    const job = bytes32()
    await expectRevert(
      m.recordFault(w.executor.address, false, 1, ZeroAddress, ALL, job),
      'ZeroAddress',
    )
    await expectRevert(
      m.recordFault(w.executor.address, false, 1, w.other.address, ALL + 1, job),
      'InvalidShare',
      [BigInt(ALL + 1)],
    )
    await expectRevert(
      m.recordFault(w.other.address, false, 1, w.settler.address, ALL, job),
      'NotRegistered',
      [w.other.address],
    )
    await expectRevert(
      nr.connect(w.other).recordFault(w.executor.address, false, 1, w.other.address, ALL, job),
      'NotManager',
      [w.other.address],
    )
    const half = ONE / 2n
    const r = await send(
      m.recordFault(w.executor.address, false, MIN_STAKE + half, w.other.address, ALL, job),
    )
    expect(parseEvents(nr, r, 'Slashed')).toEqual([
      {
        node: w.executor.address,
        amount: MIN_STAKE + half,
        recipient: w.other.address,
        reason: job,
        manager: w.settler.address,
      },
    ])
    let n = await nr.getNode(w.executor.address)
    expect(n.stake).toBe(0n)
    expect(n.unbonding).toBe(half)
    expect(await nr.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(false)
    const capped = await m.recordFault.staticCall(
      w.executor.address,
      true,
      ONE * 5n,
      w.other.address,
      ALL,
      job,
    )
    expect(capped).toEqual([half, half])
    await send(m.recordFault(w.executor.address, true, ONE * 5n, w.other.address, ALL, job))
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

  it('burns what a fault does not credit the recipient (ADR 0092), and conserves funds', async () => {
    const nr = w.c.nodeRegistry
    await timelocked(w, nr, 'setManager', [w.settler.address, true])
    const m = nr.connect(w.settler)
    const burn = await nr.BURN_ADDRESS()
    const burnedBefore = await balanceOf(w, burn)
    const heldBefore = await nr.totalHeld()
    const job = bytes32()
    // A quarter to the recipient, the rest burned.
    const r = await send(
      m.recordFault(w.executor.address, true, MIN_STAKE, w.other.address, 2500, job),
    )
    expect(parseEvents(nr, r, 'SlashBurned')).toEqual([
      { node: w.executor.address, amount: MIN_STAKE - MIN_STAKE / 4n, reason: job },
    ])
    expect(await nr.payouts(w.other.address)).toBe(MIN_STAKE / 4n)
    expect(await balanceOf(w, burn)).toBe(burnedBefore + MIN_STAKE - MIN_STAKE / 4n)
    expect(await nr.totalHeld()).toBe(heldBefore - MIN_STAKE + MIN_STAKE / 4n)
    await expectConserved(w)
    // No recipient at all: everything burned (a fail verdict's slash).
    await send(nr.connect(w.executor).addStake({ value: ONE }))
    await send(m.recordFault(w.executor.address, false, ONE, ZeroAddress, 0, job))
    expect(await balanceOf(w, burn)).toBe(burnedBefore + ONE + MIN_STAKE - MIN_STAKE / 4n)
    expect(await nr.payouts(w.other.address)).toBe(MIN_STAKE / 4n)
    await expectConserved(w)
  })

  it('blocks reentrancy into claimPayout', async () => {
    const nr = w.c.nodeRegistry
    const attacker = await deployAttacker(w.other)
    const target = await attacker.getAddress()
    await timelocked(w, nr, 'setManager', [w.settler.address, true])
    await send(
      nr
        .connect(w.settler)
        .recordFault(w.executor.address, false, MIN_STAKE, target, ALL, ZeroHash),
    )
    const claim = nr.interface.encodeFunctionData('claimPayout')
    await send(attacker.arm!(w.addresses.nodeRegistry, claim))
    await send(attacker.execute!(w.addresses.nodeRegistry, claim))
    expect(await attacker.reentryOk!()).toBe(false)
    expect(await attacker.reentryError!()).toBe(nr.interface.getError('Reentrancy')!.selector)
    expect(await attacker.received!()).toBe(MIN_STAKE)
    await expectConserved(w)
  })
})

describe('NodeRegistry peer ids (one live node per peer id)', () => {
  // PBFT maps a stream's peer to one committee member: two live nodes with one peer id make every
  // committee that seats both unbuildable (docs/adr/0054).
  const holder = (pid: string) => w.c.nodeRegistry.peerIdOwner(keccak256(pid))

  it('refuses a peer id another live node holds, on register and on update', async () => {
    const taken = (await w.c.nodeRegistry.getNode(w.executor.address)).peerId
    expect(await holder(taken)).toBe(w.executor.address)
    const copier = w.c.nodeRegistry.connect(w.other)
    const refused = await expectRevert(
      copier.register(taken, bytes32(), ROLE_VERIFIER, { value: ONE }),
      'PeerIdTaken',
      [taken, w.executor.address],
    )
    expect(refused.details).toMatchObject({ error: 'PeerIdTaken(bytes,address)' })
    const own = peerId()
    await send(copier.register(own, bytes32(), ROLE_VERIFIER, { value: ONE }))
    await expectRevert(copier.update(taken, bytes32(), ROLE_VERIFIER), 'PeerIdTaken', [
      taken,
      w.executor.address,
    ])
    expect((await copier.getNode(w.other.address)).peerId).toBe(own)
    expect(await holder(own)).toBe(w.other.address)
    await expectConserved(w)
  })

  it('a node keeps its own peer id on update, and frees the one it moves away from', async () => {
    const nr = w.c.nodeRegistry.connect(w.executor)
    const first = (await nr.getNode(w.executor.address)).peerId
    await send(nr.update(first, bytes32(), ROLE_EXECUTOR | ROLE_VERIFIER)) // its own, again
    const second = peerId()
    await send(nr.update(second, bytes32(), ROLE_EXECUTOR))
    expect(await holder(first)).toBe(ZeroAddress)
    expect(await holder(second)).toBe(w.executor.address)
    const next = w.c.nodeRegistry.connect(w.other)
    await send(next.register(first, bytes32(), ROLE_VERIFIER, { value: ONE }))
    expect(await holder(first)).toBe(w.other.address)
    await expectRevert(nr.update(first, bytes32(), ROLE_EXECUTOR), 'PeerIdTaken', [
      first,
      w.other.address,
    ])
  })

  it('a node that left (no stake, nothing unbonding) frees its peer id; it comes back with another', async () => {
    const nr = w.c.nodeRegistry.connect(w.executor)
    const pid = (await nr.getNode(w.executor.address)).peerId
    const next = w.c.nodeRegistry.connect(w.other)
    await send(nr.requestUnbond(MIN_STAKE))
    // Unbonding funds are still slashable: the node has not left, its peer id stays its own.
    await expectRevert(
      next.register(pid, bytes32(), ROLE_VERIFIER, { value: ONE }),
      'PeerIdTaken',
      [pid, w.executor.address],
    )
    await w.anvil.increaseTime(UNBONDING_DELAY)
    await send(nr.withdraw())
    await send(next.register(pid, bytes32(), ROLE_VERIFIER, { value: ONE }))
    expect(await holder(pid)).toBe(w.other.address)
    // Coming back with stake would make two live nodes with one peer id.
    await expectRevert(nr.addStake({ value: ONE }), 'PeerIdTaken', [pid, w.other.address])
    await send(nr.update(peerId(), bytes32(), ROLE_EXECUTOR))
    await send(nr.addStake({ value: ONE }))
    expect(await nr.isActive(w.executor.address, ROLE_EXECUTOR)).toBe(true)
    expect(await nr.isActive(w.other.address, ROLE_VERIFIER)).toBe(true)
    await expectConserved(w)
  })
})
