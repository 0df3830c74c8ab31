/**
 * deployDigicap deploys the attested-job settlement and names the hub NodeRegistry manager and
 * AccessController settler in their constructors (ADR 0033): the hub works from its first
 * block, and the admin timelock still holds for every later manager or settler.
 */
import { Contract, hexlify, randomBytes, type Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { connectDigicap, type DigicapAddresses, deployDigicap } from '../src/deploy.ts'
import { accessControllerAbi, nodeRegistryAbi } from '../src/generated/artifacts.ts'
import { attested } from '../src/policy/expression.ts'
import { connectSettlement } from '../src/settlement.ts'
import { ADMIN_DELAY, capsuleWith, expectRevert, send, useWorld, type World } from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

/** Every ManagerSet / SettlerSet log from the deployment on. */
async function roleLogs(a: DigicapAddresses) {
  const nr = new Contract(a.nodeRegistry, nodeRegistryAbi, w.anvil.provider)
  const ac = new Contract(a.accessController, accessControllerAbi, w.anvil.provider)
  const managers = await nr.queryFilter(nr.filters.ManagerSet!(), a.deployBlock)
  const settlers = await ac.queryFilter(ac.filters.SettlerSet!(), a.deployBlock)
  const args = (logs: typeof managers) =>
    logs.map((l) => [...(l as unknown as { args: unknown[] }).args])
  return { managers: args(managers), settlers: args(settlers) }
}

const later = async (seconds: number) => {
  await w.anvil.provider.send('evm_increaseTime', [seconds])
  await w.anvil.provider.send('evm_mine', [])
}

describe('deployDigicap: the hub is wired at construction', () => {
  it('names the hub manager, settler and sortition opener, publicly, and nobody else', async () => {
    const a = w.addresses
    const { attestationHub: hub, committeeSortition: sortition } = connectSettlement(
      a,
      w.anvil.provider,
    )
    expect(await w.c.nodeRegistry.isManager(a.attestationHub)).toBe(true)
    expect(await w.c.accessController.isSettler(a.attestationHub)).toBe(true)
    expect(await sortition.opener()).toBe(a.attestationHub)
    expect(await hub.sortition()).toBe(a.committeeSortition)
    expect(await hub.controller()).toBe(a.accessController)
    expect(await hub.registry()).toBe(a.nodeRegistry)
    // The naming is in the logs of the deployment itself, the notice a node reads before staking.
    expect(await roleLogs(a)).toEqual({
      managers: [[a.attestationHub, true]],
      settlers: [[a.attestationHub, true]],
    })
    expect(await w.c.nodeRegistry.isManager(w.deployer.address)).toBe(false)
    expect(await w.c.accessController.isSettler(w.deployer.address)).toBe(false)
  })

  it('lets the hub lock an attested grant escrow at once: no clock moved', async () => {
    const deployedAt = (await w.anvil.provider.getBlock(w.addresses.deployBlock))!.timestamp
    const { capsuleId } = await capsuleWith(w, attested())
    const ac = w.c.accessController.connect(w.executor)
    const args = [capsuleId, hexlify(randomBytes(32)), hexlify(randomBytes(32)), '0x'] as const
    const grantId = await ac.requestAccess.staticCall(...args, { value: 1000n })
    await send(ac.requestAccess(...args, { value: 1000n }))
    const { attestationHub: hub } = connectSettlement(w.addresses, w.executor)
    const r = await send(hub.openJob(grantId))
    const now = (await w.anvil.provider.getBlock(r.blockNumber))!.timestamp
    expect(now - deployedAt).toBeLessThan(ADMIN_DELAY / 100)
    // disputeEscrow is a settler's call: the hub holds the role.
    expect((await w.c.accessController.getEscrow(grantId)).state).toBe(2n) // Disputed
    expect((await hub.jobs(grantId)).status).toBe(1n) // Open
  })
})

describe('deployDigicap: the admin timelock still holds afterwards', () => {
  for (const [name, target, method] of [
    ['a NodeRegistry manager', 'nodeRegistry', 'setManager'],
    ['an AccessController settler', 'accessController', 'setSettler'],
  ] as const) {
    it(`the admin names ${name} only after the full delay; the deployer never`, async () => {
      const admin = w.other as Wallet
      const deployer = w.deployer
      // A deployment whose admin is not the deployer (the production shape).
      const a = await deployDigicap(deployer, { adminDelay: ADMIN_DELAY, admin: admin.address })
      const c = connectDigicap(a, admin)[target]
      const contract = c as unknown as Contract
      const data = contract.interface.encodeFunctionData(method, [w.settler.address, true])
      const call = () => admin.sendTransaction({ to: a[target], data })
      await expectRevert(call(), 'AdminCallNotQueued')
      // The deployer wired the hub at construction; that is all it could ever do.
      await expectRevert(deployer.sendTransaction({ to: a[target], data }), 'NotAdmin', [
        deployer.address,
      ])
      await expectRevert(
        (contract.connect(deployer) as Contract).getFunction('queueAdminCall')(data),
        'NotAdmin',
        [deployer.address],
      )
      const q = await send(contract.getFunction('queueAdminCall')(data))
      const readyAt =
        BigInt((await w.anvil.provider.getBlock(q.blockNumber))!.timestamp) + BigInt(ADMIN_DELAY)
      await expectRevert(call(), 'AdminCallNotReady')
      await later(ADMIN_DELAY - 120)
      const early = await expectRevert(call(), 'AdminCallNotReady')
      expect(early.args[1]).toBe(readyAt)
      const role = target === 'nodeRegistry' ? 'isManager' : 'isSettler'
      expect(await contract.getFunction(role)(w.settler.address)).toBe(false)
      await later(120)
      await send(call())
      expect(await contract.getFunction(role)(w.settler.address)).toBe(true)
      // Used once: the same calldata must be queued again.
      await expectRevert(call(), 'AdminCallNotQueued')
    })
  }
})
