/**
 * Signing through any `DigicapSigner` (what an executor with a hardware, TPM-held or remote
 * key uses): the same bytes as the in-memory key, and a signer for another account, or one
 * that signs as someone else, is refused before anything goes on the wire.
 */
import { type DigicapSigner, privateKeySigner, toHex } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  type AccessDomain,
  type AccessRequest,
  addressToBytes,
  recoverResultSigner,
  type SignedResultFields,
  signAccessRequest,
  signAccessRequestWith,
  signResult,
  signResultWith,
  verifyAccessRequestSignature,
} from '../src/index.ts'

const key = new Uint8Array(32).fill(7)
const otherKey = new Uint8Array(32).fill(8)
const signer = privateKeySigner(key)
const other = privateKeySigner(otherKey)
const domain: AccessDomain = {
  chainId: 31337n,
  verifyingContract: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
}
const b32 = (n: number) => new Uint8Array(32).fill(n)

const request = (): Omit<AccessRequest, 'signature'> => ({
  capsuleId: b32(1),
  executor: addressToBytes(signer.address),
  ephemeralKey: b32(2),
  measurement: b32(3),
  jobParamsHash: b32(4),
  fee: 5n,
  nonce: b32(6),
  expiry: 1_900_000_000n,
  jobParams: new Uint8Array(0),
})

const result = (): SignedResultFields => ({
  runId: b32(1),
  grantId: b32(2),
  capsuleId: b32(3),
  executor: addressToBytes(signer.address),
  receiverKey: b32(4),
  measurement: b32(5),
  runMeasurement: b32(6),
  resultHash: b32(7),
  resultSize: 99,
})

/** Claims `claimed`'s address but signs with `actual`. */
const liar = (claimed: DigicapSigner, actual: DigicapSigner): DigicapSigner => ({
  address: claimed.address,
  signTypedData: actual.signTypedData,
})

describe('signAccessRequestWith', () => {
  it('gives the bytes of signAccessRequest and verifies', async () => {
    const viaSigner = await signAccessRequestWith(signer, request(), domain)
    const viaKey = signAccessRequest(request(), domain, key)
    expect(toHex(viaSigner.signature)).toBe(toHex(viaKey.signature))
    expect(verifyAccessRequestSignature(viaSigner, domain)).toBe(true)
  })

  it('refuses a signer that is not the request’s executor', async () => {
    await expect(signAccessRequestWith(other, request(), domain)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })

  it('refuses a signer that signs as another account, and one that answers garbage', async () => {
    await expect(
      signAccessRequestWith(liar(signer, other), request(), domain),
    ).rejects.toMatchObject({ code: 'CAPSULE_SIGNATURE' })
    const garbage: DigicapSigner = { address: signer.address, signTypedData: async () => '0x12' }
    await expect(signAccessRequestWith(garbage, request(), domain)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })

  it('refuses a malformed signer address with a typed error', async () => {
    const bad = { ...signer, address: 'not an address' } as unknown as DigicapSigner
    await expect(signAccessRequestWith(bad, request(), domain)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})

describe('signResultWith', () => {
  it('gives the bytes of signResult, recovered to the executor', async () => {
    const sig = await signResultWith(signer, result(), domain)
    expect(toHex(sig)).toBe(toHex(signResult(result(), domain, key)))
    expect(
      recoverResultSigner({ ...result(), signature: sig, hpke: new Uint8Array(0) }, domain),
    ).toBe(signer.address)
  })

  it('refuses a signer for another account and one that signs as someone else', async () => {
    await expect(signResultWith(other, result(), domain)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
    await expect(signResultWith(liar(signer, other), result(), domain)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })
})
