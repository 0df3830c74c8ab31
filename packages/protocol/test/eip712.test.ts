import { InvalidArgumentError } from '@digicap/capsule-core'
import { keccak_256, keccak_256 as keccakJob } from '@noble/hashes/sha3.js'
import { Signature, TypedDataEncoder, Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  type AccessDomain,
  type AccessRequest,
  accessRequestDigest,
  accessRequestReplayKey,
  accessRequestSigningBytes,
  accessRequestTypedData,
  addressToBytes,
  decodeAccessRequest,
  encodeAccessRequest,
  recoverAccessRequestSigner,
  signAccessRequest,
  verifyAccessRequestSignature,
  WireSignatureError,
} from '../src/index.ts'

const EMPTY_JOB_HASH = keccakJob(new Uint8Array(0))

const wallet = new Wallet('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
const domain: AccessDomain = {
  chainId: 31337n,
  verifyingContract: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
}
const hexBytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.slice(2), 'hex'))

function unsigned(): Omit<AccessRequest, 'signature'> {
  return {
    capsuleId: new Uint8Array(32).fill(1),
    executor: addressToBytes(wallet.address as `0x${string}`),
    ephemeralKey: new Uint8Array(32).fill(2),
    measurement: new Uint8Array(32).fill(3),
    nonce: new Uint8Array(32).fill(4),
    expiry: 1_900_000_000n,
    jobParamsHash: EMPTY_JOB_HASH,
    fee: 0n,
    jobParams: new Uint8Array(0),
  }
}

async function ethersSigned(): Promise<AccessRequest> {
  const req = unsigned()
  const td = accessRequestTypedData(req, domain)
  const sig = await wallet.signTypedData(
    td.domain,
    td.types as unknown as Record<string, { name: string; type: string }[]>,
    td.message,
  )
  return { ...req, signature: hexBytes(sig) }
}

describe('EIP-712 access requests', () => {
  it('digest equals ethers TypedDataEncoder.hash', () => {
    const req = unsigned()
    const td = accessRequestTypedData(req, domain)
    const ethersHash = TypedDataEncoder.hash(
      td.domain,
      td.types as unknown as Record<string, { name: string; type: string }[]>,
      td.message,
    )
    expect(Buffer.from(accessRequestDigest(req, domain)).toString('hex')).toBe(ethersHash.slice(2))
    const signing = accessRequestSigningBytes(req, domain)
    expect(signing.length).toBe(66)
    expect([signing[0], signing[1]]).toEqual([0x19, 0x01])
    expect(keccak_256(signing)).toEqual(accessRequestDigest(req, domain))
  })

  it('recovers the signer of an ethers Wallet.signTypedData signature', async () => {
    const req = await ethersSigned()
    expect(recoverAccessRequestSigner(req, domain)).toBe(wallet.address)
    expect(verifyAccessRequestSignature(req, domain)).toBe(true)
    // survives the wire
    const back = decodeAccessRequest(encodeAccessRequest(req))
    expect(recoverAccessRequestSigner(back, domain)).toBe(wallet.address)
  })

  it('signAccessRequest produces the same bytes as ethers', async () => {
    const ours = signAccessRequest(unsigned(), domain, hexBytes(wallet.privateKey))
    const theirs = await ethersSigned()
    expect(ours.signature).toEqual(theirs.signature)
  })

  it('rejects a signature over another domain, field or signer', async () => {
    const req = await ethersSigned()
    expect(verifyAccessRequestSignature(req, { ...domain, chainId: 1n })).toBe(false)
    expect(
      verifyAccessRequestSignature(req, {
        ...domain,
        verifyingContract: '0x0000000000000000000000000000000000000001',
      }),
    ).toBe(false)
    expect(verifyAccessRequestSignature({ ...req, expiry: req.expiry + 1n }, domain)).toBe(false)
    expect(verifyAccessRequestSignature({ ...req, nonce: new Uint8Array(32) }, domain)).toBe(false)
    const other = Wallet.createRandom()
    expect(
      verifyAccessRequestSignature(
        { ...req, executor: addressToBytes(other.address as `0x${string}`) },
        domain,
      ),
    ).toBe(false)
  })

  it('rejects high-s (malleable) signatures and bad v with WIRE_SIGNATURE', async () => {
    const req = await ethersSigned()
    const sig = Signature.from(Buffer.from(req.signature).toString('hex').replace(/^/, '0x'))
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const highS = (n - BigInt(sig.s)).toString(16).padStart(64, '0')
    const malleable = new Uint8Array(65)
    malleable.set(req.signature.subarray(0, 32), 0)
    malleable.set(hexBytes(`0x${highS}`), 32)
    malleable[64] = sig.v === 27 ? 28 : 27
    expect(() => recoverAccessRequestSigner({ ...req, signature: malleable }, domain)).toThrow(
      expect.objectContaining({ code: 'WIRE_SIGNATURE' }),
    )
    const badV = req.signature.slice()
    badV[64] = 1
    expect(() => recoverAccessRequestSigner({ ...req, signature: badV }, domain)).toThrow(
      WireSignatureError,
    )
    const zero = new Uint8Array(65)
    zero[64] = 27
    expect(() => recoverAccessRequestSigner({ ...req, signature: zero }, domain)).toThrow(
      expect.objectContaining({ code: 'WIRE_SIGNATURE' }),
    )
    expect(verifyAccessRequestSignature({ ...req, signature: zero }, domain)).toBe(false)
  })

  it('accessRequestReplayKey is executor || nonce', () => {
    const req = unsigned()
    const key = accessRequestReplayKey(req)
    expect(key.length).toBe(52)
    expect(key.subarray(0, 20)).toEqual(req.executor)
    expect(key.subarray(20)).toEqual(req.nonce)
    expect(() => accessRequestReplayKey({ ...req, nonce: new Uint8Array(8) })).toThrow(
      InvalidArgumentError,
    )
  })

  it('rejects bad arguments with INVALID_ARGUMENT', () => {
    expect(() => accessRequestDigest({ ...unsigned(), nonce: new Uint8Array(31) }, domain)).toThrow(
      InvalidArgumentError,
    )
    expect(() => accessRequestDigest(unsigned(), { ...domain, chainId: 0n })).toThrow(
      InvalidArgumentError,
    )
    expect(() =>
      accessRequestDigest(unsigned(), { ...domain, verifyingContract: '0x1234' as `0x${string}` }),
    ).toThrow(InvalidArgumentError)
    expect(() => signAccessRequest(unsigned(), domain, new Uint8Array(32))).toThrow(
      InvalidArgumentError,
    )
  })
})
