/**
 * The hand-written `getCapsule` call and decoder (the JSON-RPC registry read, ADR 0052) against
 * ethers' ABI coder on the contracts' ABI: same selectors, same fields, and a refusal (never a
 * half-decoded capsule) for an answer that is not the tuple.
 */
import { capsuleRegistryAbi } from '@digicap/contracts'
import {
  CAPSULE_NOT_FOUND_SELECTOR,
  CapsuleAbiError,
  decodeGetCapsule,
  GET_CAPSULE_SELECTOR,
  getCapsuleCallData,
} from '@digicap/contracts/light'
import { getBytes, hexlify, Interface, randomBytes } from 'ethers'
import { describe, expect, it } from 'vitest'

const registry = new Interface(capsuleRegistryAbi as never)
const getCapsule = registry.getFunction('getCapsule')
if (getCapsule === null) throw new TypeError('getCapsule missing from the ABI')

const capsule = (over: Record<string, unknown> = {}) => ({
  policy: '0x00000000000000000000000000000000000000aa',
  registeredAt: 1_700_000_000,
  revoked: false,
  runs: 3,
  owner: '0x1111111111111111111111111111111111111111',
  plaintextHash: hexlify(randomBytes(32)),
  keyguardKeyId: hexlify(randomBytes(32)),
  cid: 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
  keyguardPeerId: randomBytes(38),
  ...over,
})

describe('getCapsule by hand', () => {
  it('has the ABI’s selectors and call data', () => {
    expect(GET_CAPSULE_SELECTOR).toBe(getCapsule.selector)
    expect(CAPSULE_NOT_FOUND_SELECTOR).toBe(registry.getError('CapsuleNotFound')?.selector)
    const id = randomBytes(32)
    expect(getCapsuleCallData(id)).toBe(registry.encodeFunctionData(getCapsule, [id]))
    expect(() => getCapsuleCallData(randomBytes(31))).toThrow(TypeError)
  })

  it('decodes what the contract encodes (addresses lower-case)', () => {
    for (const c of [capsule(), capsule({ revoked: true, cid: 'ünïcode ✓ cid' })]) {
      const hex = registry.encodeFunctionResult(getCapsule, [c])
      const d = decodeGetCapsule(hex)
      expect(d).toEqual({
        policy: c.policy.toLowerCase(),
        revoked: c.revoked,
        owner: c.owner.toLowerCase(),
        plaintextHash: getBytes(c.plaintextHash as string),
        cid: c.cid,
      })
    }
  })

  it('refuses an answer that is not the tuple', () => {
    const good = registry.encodeFunctionResult(getCapsule, [capsule()])
    const word = (i: number) => 2 + i * 64
    const put = (hex: string, i: number, w: string) =>
      hex.slice(0, word(i)) + w.padStart(64, '0') + hex.slice(word(i) + 64)
    for (const bad of [
      '0x',
      'nothex',
      good.slice(0, 300), // cut short
      put(good, 1, 'ff'.repeat(32)), // the policy word with high bytes: not an address
      put(good, 3, '2'), // revoked = 2: not a bool
      put(good, 8, 'ffff'), // cid's offset past the end
      put(good, 0, 'ff'.repeat(32)), // the tuple's offset out of range
      `${good}ab`, // whole bytes, not whole words
      registry.encodeFunctionResult(getCapsule, [capsule({ cid: 'c'.repeat(300) })]), // CID > 256 bytes
    ]) {
      expect(() => decodeGetCapsule(bad), bad.slice(0, 80)).toThrow(CapsuleAbiError)
    }
  })
})
