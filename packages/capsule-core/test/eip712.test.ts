import { readFileSync } from 'node:fs'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recoverAddress, TypedDataEncoder, Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { parseVector } from '../scripts/generate-vectors.ts'
import { encodeTypedDataType, hashTypedDataDomain } from '../src/eip712/typed-data.ts'
import {
  addressFromPrivateKey,
  capsuleSigningDigest,
  capsuleTypedData,
  hashTypedData,
  parseCapsuleHeader,
  recoverDigestSigner,
  sealCapsule,
  signCapsuleHeader,
  signDigest,
  type TypedData,
  verifyCapsuleHeader,
} from '../src/index.ts'
import { build, DATA_KEY, detBytes, OTHER_KEY, OWNER, OWNER_KEY } from './fixtures.ts'

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`

// The example in EIP-712 itself (eips.ethereum.org/EIPS/eip-712, assets/eip-712/Example.js):
// its type encoding, domain separator, digest and the signature by keccak256("cow").
const mail: TypedData = {
  domain: {
    name: 'Ether Mail',
    version: '1',
    chainId: 1,
    verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC',
  },
  types: {
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
}

describe('EIP-712 (the EIP "Mail" example)', () => {
  it('encodes the type as published', () => {
    expect(encodeTypedDataType('Mail', mail.types)).toBe(
      'Mail(Person from,Person to,string contents)Person(string name,address wallet)',
    )
  })

  it('gives the published digest and signature', () => {
    const digest = hashTypedData(mail)
    expect(hex(digest)).toBe('0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2')
    const cow = keccak_256(new TextEncoder().encode('cow'))
    expect(addressFromPrivateKey(cow)).toBe('0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826')
    const sig = signDigest(digest, cow)
    expect(hex(sig.subarray(0, 32))).toBe(
      '0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d',
    )
    expect(hex(sig.subarray(32, 64))).toBe(
      '0x07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562',
    )
    expect(sig[64]).toBe(28)
    expect(recoverDigestSigner(digest, sig)).toBe('0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826')
  })

  it('kept type hashes and domain separators: each domain its own digest, callers cannot alter them', () => {
    const digest = hex(hashTypedData(mail))
    // A caller that scribbles on a separator it was given changes nothing later.
    hashTypedDataDomain(mail.domain).fill(0)
    expect(hex(hashTypedData(mail))).toBe(digest)
    // Every field of the domain still counts once its separator is kept (ethers as the oracle).
    const variants = [
      { ...mail.domain, name: 'ether mail' },
      { ...mail.domain, version: '2' },
      { ...mail.domain, chainId: 2 },
      { ...mail.domain, verifyingContract: '0x0000000000000000000000000000000000000001' },
      { ...mail.domain, salt: `0x${'11'.repeat(32)}` },
      { ...mail.domain, name: 'Ether Mail","string",' },
      { ...mail.domain, name: 'Ether', version: 'Mail1' },
    ] as const
    const seen = new Set([digest])
    for (const domain of variants) {
      for (let i = 0; i < 2; i++) {
        const ours = hex(hashTypedData({ ...mail, domain }))
        const { EIP712Domain: _, ...types } = mail.types
        expect(ours).toBe(TypedDataEncoder.hash(domain, types, mail.message))
        if (i === 0) seen.add(ours)
      }
    }
    expect(seen.size).toBe(variants.length + 1)
    // chainId as a number or a bigint is one domain.
    expect(hex(hashTypedData({ ...mail, domain: { ...mail.domain, chainId: 1n } }))).toBe(digest)
  })

  it('gives the published domain separator', () => {
    const published = '0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f'
    expect(hex(hashTypedDataDomain(mail.domain))).toBe(published)
    expect(TypedDataEncoder.hashDomain(mail.domain)).toBe(published)
  })
})

describe('capsule typed data', () => {
  const b = build(detBytes('eip712 plaintext', 300), 64)

  it('has the Digicap domain and a small Capsule struct a wallet can show', () => {
    const td = capsuleTypedData(b.header)
    expect(td.domain).toEqual({
      name: 'Digicap',
      version: '1',
      chainId: 31337,
      verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    })
    expect(td.primaryType).toBe('Capsule')
    expect(td.message.owner).toBe(OWNER)
    expect(td.message.plaintextSize).toBe(300n)
    expect(td.message.headerHash).toBe(hex(parseCapsuleHeader(b.capsule).headerHash))
  })

  it('matches ethers: same digest, and an ethers signature verifies', async () => {
    const td = capsuleTypedData(b.header)
    expect(TypedDataEncoder.hash(td.domain, td.types, td.message)).toBe(
      hex(capsuleSigningDigest(b.header)),
    )
    const wallet = new Wallet(hex(OWNER_KEY))
    expect(wallet.address).toBe(OWNER)
    const signature = await wallet.signTypedData(td.domain, td.types, td.message)
    expect(signature).toBe(hex(signCapsuleHeader(b.header, OWNER_KEY)))
    const capsule = sealCapsule({
      header: b.header,
      signature: signature as `0x${string}`,
      dataKey: DATA_KEY,
      plaintext: b.plaintext,
    })
    expect(verifyCapsuleHeader(capsule)).toBe(OWNER)
  })

  it('refuses to sign with a key that is not the owner', () => {
    expect(() => signCapsuleHeader(b.header, OTHER_KEY)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it('verifyCapsuleHeader checks an expected owner', () => {
    expect(verifyCapsuleHeader(b.capsule, { owner: OWNER.toLowerCase() as `0x${string}` })).toBe(
      OWNER,
    )
    expect(() =>
      verifyCapsuleHeader(b.capsule, { owner: addressFromPrivateKey(OTHER_KEY) }),
    ).toThrow(expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }))
  })

  it('rejects malformed signatures with CAPSULE_SIGNATURE', () => {
    const digest = capsuleSigningDigest(b.header)
    for (const sig of [new Uint8Array(64), new Uint8Array(65), new Uint8Array(66)]) {
      if (sig.length === 65) sig[64] = 27
      expect(() => recoverDigestSigner(digest, sig)).toThrow(
        expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
      )
    }
    expect(() => recoverDigestSigner(digest, '0xzz')).toThrow(
      expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
    )
  })

  it('rejects typed data values that do not fit their types', () => {
    const bad = (message: Record<string, unknown>, type: string): TypedData => ({
      domain: {},
      types: { T: [{ name: 'x', type }] },
      primaryType: 'T',
      message,
    })
    expect(() => hashTypedData(bad({ x: 256 }, 'uint8'))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => hashTypedData(bad({ x: -129 }, 'int8'))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => hashTypedData(bad({ x: '0x1234' }, 'bytes32'))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => hashTypedData(bad({ x: 1 }, 'string'))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => hashTypedData(bad({ x: 1 }, 'fixed128x18'))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it('hashes arrays, bools, bytes and signed ints like ethers', () => {
    const td: TypedData = {
      domain: { name: 'x', salt: hex(new Uint8Array(32).fill(1)) as `0x${string}` },
      types: {
        T: [
          { name: 'a', type: 'uint16[]' },
          { name: 'b', type: 'bool' },
          { name: 'c', type: 'bytes' },
          { name: 'd', type: 'int32' },
        ],
      },
      primaryType: 'T',
      message: { a: [1, 2, 3], b: true, c: '0xdeadbeef', d: -5 },
    }
    expect(hex(hashTypedData(td))).toBe(TypedDataEncoder.hash(td.domain, td.types, td.message))
  })
})

// SPEC §5.1: what an external verifier must check itself. Stock verifiers each let one of the
// spare encodings through; Digicap readers refuse both, so a signature has one encoding.
describe('external verifiers and the one-encoding rule (SPEC §5.1)', () => {
  const vector = (name: string) => {
    const file = readFileSync(new URL(`./vectors/${name}`, import.meta.url))
    const p = parseCapsuleHeader(parseVector(file).capsule)
    return { digest: capsuleSigningDigest(p.header), signature: p.signature, owner: p.header.owner }
  }

  it('ethers recovers the owner from v = 0/1; a Digicap reader refuses it', () => {
    const { digest, signature, owner } = vector('signature-v-recovery-id')
    expect(recoverAddress(hex(digest), hex(signature))).toBe(owner)
    expect(() => recoverDigestSigner(digest, signature)).toThrow(
      expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
    )
  })

  it('plain ECDSA recovery (what the EVM ecrecover does) accepts the high-s twin; a Digicap reader refuses it', () => {
    const { digest, signature, owner } = vector('signature-high-s')
    const rec = new Uint8Array(65)
    rec[0] = (signature[64] as number) - 27
    rec.set(signature.subarray(0, 64), 1)
    const sig = secp256k1.Signature.fromBytes(rec, 'recovered')
    expect(sig.hasHighS()).toBe(true)
    const pub = sig.recoverPublicKey(digest).toBytes(false)
    expect(`0x${Buffer.from(keccak_256(pub.subarray(1)).subarray(12)).toString('hex')}`).toBe(
      owner.toLowerCase(),
    )
    expect(() => recoverDigestSigner(digest, signature)).toThrow(
      expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
    )
  })
})
