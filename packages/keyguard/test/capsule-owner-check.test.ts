/**
 * Capsule-id squatting (ADR 0071), on anvil and libp2p: the owner's pipeline stores the wrapped
 * key before its `CapsuleRegistry.register` is mined, and the registry takes any id first come
 * first served. An attacker that copies the id from the mempool and registers it first, with a
 * higher tip, owns it on chain and picks its policy. The keyguard must not release the owner's
 * key for it on either path: the capsule's on-chain owner (and policy, when the key record names
 * one) must be the key record's. On the previous code both paths released the data key.
 */
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { getBytes, hexlify, parseUnits, randomBytes, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { registerCapsule, requestAccess, storeKey, TEST_OWNER, until } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    keyguardDialsExecutor: true,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true, maxExpirySeconds: 300 } },
    events: ['released', 'grant-refused', 'fast-path-granted', 'fast-path-refused'],
  })
}, 90_000)

afterAll(() => w?.stop())

/** The owner's `register` and the attacker's copy in one block, the attacker's first. */
async function frontRunRegister(capsuleId: string): Promise<void> {
  const p = w.chain.anvil.provider
  const reg = w.chain.c.capsuleRegistry
  const args = [
    capsuleId,
    w.chain.policy,
    'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
    hexlify(randomBytes(32)),
    w.kgNode.peerId.toMultihash().bytes,
    hexlify(randomBytes(32)),
  ] as const
  await p.send('evm_setAutomine', [false])
  try {
    await reg.connect(w.chain.owner).register(...args, {
      maxPriorityFeePerGas: parseUnits('1', 'gwei'),
      maxFeePerGas: parseUnits('10', 'gwei'),
      gasLimit: 1_000_000,
    })
    await reg.connect(w.chain.other).register(...args, {
      maxPriorityFeePerGas: parseUnits('5', 'gwei'),
      maxFeePerGas: parseUnits('20', 'gwei'),
      gasLimit: 1_000_000,
    })
    await p.send('evm_mine', [])
  } finally {
    await p.send('evm_setAutomine', [true])
  }
  expect(await w.chain.c.capsuleRegistry.ownerOf(capsuleId)).toBe(w.chain.other.address)
}

const refusedEvent = (grantId: string) =>
  w.events.find(
    (e) => e.type === 'grant-refused' && (e as { grantId: string }).grantId === grantId,
  ) as { reason: string; detail?: string } | undefined

/** Asks for `capsuleId` on the chain path; waits for the refusal and returns it. */
async function chainRefusal(capsuleId: string) {
  const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
  await until(() => refusedEvent(grantId) !== undefined || w.exec.received.has(grantId), 15_000)
  expect(w.exec.received.has(grantId)).toBe(false)
  // Journaled: no restart serves it.
  expect((await w.parts.journal.get(grantId))?.state).toBe('refused')
  return refusedEvent(grantId)
}

describe('the capsule check (on-chain owner and policy = the key record)', () => {
  it('chain path: a squatted capsule id is refused not-owner, nothing released', async () => {
    const capsuleId = hexlify(randomBytes(32))
    await storeKey(w.parts, capsuleId, randomBytes(32)) // the pipeline's key record first
    await frontRunRegister(capsuleId)
    expect(await chainRefusal(capsuleId)).toMatchObject({
      reason: 'not-owner',
      detail: 'other-owner',
    })
  }, 60_000)

  it('fast path: a squatted capsule id is refused policy-denied not-owner', async () => {
    const capsuleId = hexlify(randomBytes(32))
    await storeKey(w.parts, capsuleId, randomBytes(32))
    await frontRunRegister(capsuleId)
    const res = await w.ask(
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } }),
    )
    expect(res).toMatchObject({
      status: 'refused',
      reasonCode: 'policy-denied',
      reason: 'not-owner',
    })
  }, 60_000)

  it('a record whose policy is not the capsule policy on chain is refused policy-mismatch', async () => {
    const capsuleId = await registerCapsule(w.chain, w.kgNode)
    const sealedPolicy = Wallet.createRandom().address
    await storeKey(w.parts, capsuleId, randomBytes(32), { owner: TEST_OWNER, policy: sealedPolicy })
    expect(await chainRefusal(capsuleId)).toMatchObject({
      reason: 'policy-mismatch',
      detail: 'other-policy',
    })
    const res = await w.ask(
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } }),
    )
    expect(res).toMatchObject({ status: 'refused', reason: 'policy-mismatch' })
  }, 60_000)

  it('a record that names no owner, on a keyguard with no owners, is refused (fail closed)', async () => {
    const capsuleId = await registerCapsule(w.chain, w.kgNode)
    await storeKey(w.parts, capsuleId, randomBytes(32), {})
    expect(await chainRefusal(capsuleId)).toMatchObject({
      reason: 'not-owner',
      detail: 'no-owner-known',
    })
  }, 60_000)

  it("the owner's own capsule, policy named, is served on both paths", async () => {
    const capsuleId = await registerCapsule(w.chain, w.kgNode)
    const dataKey = randomBytes(32)
    await storeKey(w.parts, capsuleId, dataKey, { owner: TEST_OWNER, policy: w.chain.policy })
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await until(() => w.exec.received.has(grantId), 15_000)
    expect(hexlify(w.exec.received.get(grantId) as Uint8Array)).toBe(hexlify(dataKey))
    const eph = w.exec.newEphemeral()
    const res = await w.ask(w.signed({ capsuleId, fields: { ephemeralKey: getBytes(eph) } }))
    if (res.status !== 'granted' || res.keyRelease === undefined)
      throw new Error(JSON.stringify(res))
    const key = await hpkeOpen(
      w.exec.keys.get(eph) as Uint8Array,
      decodeHpkeSealed(res.keyRelease.hpke),
      res.keyRelease.grantId,
    )
    expect(hexlify(key)).toBe(hexlify(dataKey))
  }, 60_000)
})
