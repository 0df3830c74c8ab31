import { ZeroAddress, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { deployPolicy } from '../src/compiler/policy.ts'
import { parseEvents } from '../src/events.ts'
import { maxRuns } from '../src/policy/expression.ts'
import { bytes32, CID, expectRevert, peerId, send, useWorld, type World } from './helpers.ts'

let w: World
let policyA: string
let policyB: string
useWorld(async (world) => {
  w = world
  policyA = (await deployPolicy(w.owner, maxRuns(1), { nodeRegistry: w.addresses.nodeRegistry }))
    .address
  policyB = (await deployPolicy(w.owner, maxRuns(2), { nodeRegistry: w.addresses.nodeRegistry }))
    .address
})

async function registered() {
  const capsuleId = bytes32()
  const reg = w.c.capsuleRegistry.connect(w.owner)
  const args = {
    capsuleId,
    policy: policyA,
    cid: CID,
    plaintextHash: bytes32(),
    keyguardPeerId: peerId(),
    keyguardKeyId: bytes32(),
  }
  const r = await send(
    reg.register(
      capsuleId,
      args.policy,
      args.cid,
      args.plaintextHash,
      args.keyguardPeerId,
      args.keyguardKeyId,
    ),
  )
  return { reg, args, receipt: r }
}

describe('CapsuleRegistry', () => {
  it('registers a capsule with its owner, policy, CID, plaintext hash and keyguard', async () => {
    const { reg, args, receipt } = await registered()
    expect(parseEvents(reg, receipt, 'CapsuleRegistered')).toEqual([
      { ...args, owner: w.owner.address },
    ])
    const c = await reg.getCapsule(args.capsuleId)
    expect(c.owner).toBe(w.owner.address)
    expect(c.policy).toBe(policyA)
    expect(c.cid).toBe(CID)
    expect(c.plaintextHash).toBe(args.plaintextHash)
    expect(c.keyguardPeerId).toBe(args.keyguardPeerId)
    expect(c.keyguardKeyId).toBe(args.keyguardKeyId)
    expect(c.revoked).toBe(false)
    expect(c.registeredAt).toBe(
      BigInt((await w.anvil.provider.getBlock(receipt.blockNumber))!.timestamp),
    )
    expect([...(await reg.accessInfo(args.capsuleId))]).toEqual([policyA, false, 0n])
    expect(c.runs).toBe(0n)
    expect(await reg.accessController()).toBe(w.addresses.accessController)
    expect(await reg.ownerOf(args.capsuleId)).toBe(w.owner.address)
  })

  it('rejects zero ids, duplicates, non-contract policies, bad CIDs and bad peer ids', async () => {
    const { reg, args } = await registered()
    const r = (o: Partial<typeof args>) => {
      const a = { ...args, capsuleId: bytes32(), ...o }
      return reg.register(
        a.capsuleId,
        a.policy,
        a.cid,
        a.plaintextHash,
        a.keyguardPeerId,
        a.keyguardKeyId,
      )
    }
    await expectRevert(r({ capsuleId: ZeroHash }), 'ZeroCapsuleId')
    await expectRevert(r({ capsuleId: args.capsuleId }), 'CapsuleExists', [args.capsuleId])
    await expectRevert(r({ policy: w.other.address }), 'InvalidPolicy', [w.other.address])
    await expectRevert(r({ policy: ZeroAddress }), 'InvalidPolicy', [ZeroAddress])
    await expectRevert(r({ cid: '' }), 'InvalidCid', [0n])
    await expectRevert(r({ cid: 'b'.repeat(129) }), 'InvalidCid', [129n])
    await expectRevert(r({ keyguardPeerId: '0x' }), 'InvalidKeyguardPeerId', [0n])
    await expectRevert(r({ keyguardPeerId: `0x${'11'.repeat(129)}` }), 'InvalidKeyguardPeerId', [
      129n,
    ])
    await expectRevert(reg.getCapsule(bytes32()), 'CapsuleNotFound')
  })

  it('lets only the owner update policy, content and keyguard, with an event each', async () => {
    const { reg, args } = await registered()
    const id = args.capsuleId
    const p = await send(reg.updatePolicy(id, policyB))
    expect(parseEvents(reg, p, 'PolicyUpdated')).toEqual([
      { capsuleId: id, previousPolicy: policyA, policy: policyB },
    ])
    const newCid = `${CID.slice(0, -4)}aaaa`
    const h = bytes32()
    const c = await send(reg.updateContent(id, newCid, h))
    expect(parseEvents(reg, c, 'ContentUpdated')).toEqual([
      { capsuleId: id, cid: newCid, plaintextHash: h },
    ])
    const pid = peerId()
    const kid = bytes32()
    const k = await send(reg.updateKeyguard(id, pid, kid))
    expect(parseEvents(reg, k, 'KeyguardUpdated')).toEqual([
      { capsuleId: id, keyguardPeerId: pid, keyguardKeyId: kid },
    ])
    const after = await reg.getCapsule(id)
    expect([
      after.policy,
      after.cid,
      after.plaintextHash,
      after.keyguardPeerId,
      after.keyguardKeyId,
    ]).toEqual([policyB, newCid, h, pid, kid])
    await expectRevert(reg.updatePolicy(id, w.other.address), 'InvalidPolicy', [w.other.address])
    await expectRevert(reg.updateContent(id, '', h), 'InvalidCid', [0n])
    await expectRevert(reg.updateKeyguard(id, '0x', kid), 'InvalidKeyguardPeerId', [0n])
    const stranger = reg.connect(w.other)
    await expectRevert(stranger.updatePolicy(id, policyA), 'NotCapsuleOwner', [id, w.other.address])
    await expectRevert(stranger.updateContent(id, CID, h), 'NotCapsuleOwner', [id, w.other.address])
    await expectRevert(stranger.updateKeyguard(id, pid, kid), 'NotCapsuleOwner', [
      id,
      w.other.address,
    ])
    await expectRevert(stranger.revoke(id), 'NotCapsuleOwner', [id, w.other.address])
    const unknown = bytes32()
    await expectRevert(reg.updatePolicy(unknown, policyA), 'CapsuleNotFound', [unknown])
  })

  it('revokes for good', async () => {
    const { reg, args } = await registered()
    const id = args.capsuleId
    const r = await send(reg.revoke(id))
    expect(parseEvents(reg, r, 'CapsuleRevoked')).toEqual([{ capsuleId: id }])
    expect([...(await reg.accessInfo(id))]).toEqual([policyA, true, 0n])
    await expectRevert(reg.revoke(id), 'CapsuleIsRevoked', [id])
    await expectRevert(reg.updatePolicy(id, policyB), 'CapsuleIsRevoked', [id])
    await expectRevert(reg.updateContent(id, CID, ZeroHash), 'CapsuleIsRevoked', [id])
    await expectRevert(reg.updateKeyguard(id, peerId(), ZeroHash), 'CapsuleIsRevoked', [id])
  })

  it('counts runs only for its access controller', async () => {
    const { reg, args } = await registered()
    await expectRevert(reg.recordRun(args.capsuleId), 'NotAccessController', [w.owner.address])
    const ac = w.c.accessController.connect(w.executor)
    await send(ac.requestAccess(args.capsuleId, bytes32(), ZeroHash, '0x'))
    expect((await reg.getCapsule(args.capsuleId)).runs).toBe(1n)
    expect(await w.c.accessController.runCount(args.capsuleId)).toBe(1n)
  })

  it('sets and clears operators', async () => {
    const reg = w.c.capsuleRegistry.connect(w.owner)
    await expectRevert(reg.setOperator(ZeroAddress, true), 'InvalidOperator', [ZeroAddress])
    await expectRevert(reg.setOperator(w.owner.address, true), 'InvalidOperator', [w.owner.address])
    const r = await send(reg.setOperator(w.other.address, true))
    expect(parseEvents(reg, r, 'OperatorSet')).toEqual([
      { owner: w.owner.address, operator: w.other.address, approved: true },
    ])
    expect(await reg.isOperator(w.owner.address, w.other.address)).toBe(true)
    await send(reg.setOperator(w.other.address, false))
    expect(await reg.isOperator(w.owner.address, w.other.address)).toBe(false)
  })
})
