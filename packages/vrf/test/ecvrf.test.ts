import { randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { describe, expect, it } from 'vitest'
import {
  decodePublicKey,
  encodeToCurve,
  P256_SHA256_TAI,
  proofToHash,
  prove,
  publicKeyOf,
  SECP256K1_SHA256_TAI,
  VrfKeyError,
  VrfProofError,
  verify,
} from '../src/index.ts'
import { nonceRfc6979 } from '../src/nonce.ts'
import { hex, readVectors, toHexString } from './vectors.ts'

const SUITES = {
  [P256_SHA256_TAI.name]: P256_SHA256_TAI,
  [SECP256K1_SHA256_TAI.name]: SECP256K1_SHA256_TAI,
}

describe('ECVRF vectors (one file per case in test/vectors)', () => {
  const valid = readVectors().filter((v) => v.fields.expect === 'valid')
  it('has the three RFC 9381 B.1 examples and the two secp256k1 cross-implementation cases', () => {
    expect(valid.map((v) => v.file)).toEqual([
      'rfc9381-p256-example-10.txt',
      'rfc9381-p256-example-11.txt',
      'rfc9381-p256-example-12.txt',
      'vrf-rs-secp256k1-prove.txt',
      'vrf-rs-secp256k1-verify.txt',
    ])
  })
  for (const { file, fields: f } of valid) {
    it(`${file}: reproduces every published value`, () => {
      const suite = SUITES[f.suite!]!
      const alpha = hex(f.alpha!)
      const pk = f.pk ? hex(f.pk) : publicKeyOf(suite, hex(f.sk!))
      if (f.sk) {
        if (f.pk) expect(toHexString(publicKeyOf(suite, hex(f.sk)))).toBe(f.pk)
        expect(toHexString(prove(suite, hex(f.sk), alpha))).toBe(f.pi)
      }
      const H = encodeToCurve(suite, pk, alpha)
      if (f.h) expect(H.toHex(true)).toBe(f.h)
      if (f.k) {
        const k = nonceRfc6979(suite, BigInt(`0x${f.sk}`), H.toBytes(true))
        expect(k.toString(16).padStart(64, '0')).toBe(f.k)
        if (f.u) expect(suite.Point.BASE.multiply(k).toHex(true)).toBe(f.u)
        if (f.v) expect(H.multiply(k).toHex(true)).toBe(f.v)
      }
      const beta = verify(suite, pk, alpha, hex(f.pi!))
      expect(toHexString(proofToHash(suite, hex(f.pi!)))).toBe(toHexString(beta))
      if (f.beta) expect(toHexString(beta)).toBe(f.beta)
      expect(decodePublicKey(suite, pk).toHex(true)).toBe(toHexString(pk))
    })
  }
})

describe('ECVRF refuses malformed and wrong proofs with the typed error of the failing check', () => {
  const invalid = readVectors().filter((v) => v.fields.expect === 'invalid')
  it('has an invalid vector for every reason on both suites', () => {
    const reasons = new Set(invalid.map((v) => `${v.fields.suite} ${v.fields.reason}`))
    for (const suite of Object.keys(SUITES))
      for (const r of ['length', 'gamma', 's-range', 'challenge', 'public-key'])
        expect(reasons.has(`${suite} ${r}`), `${suite} ${r}`).toBe(true)
  })
  for (const { file, fields: f } of invalid) {
    it(`${file}: ${f.error} ${f.reason}`, () => {
      const suite = SUITES[f.suite!]!
      let caught: unknown
      try {
        verify(suite, hex(f.pk!), hex(f.alpha!), hex(f.pi!))
      } catch (err) {
        caught = err
      }
      const ErrorClass = f.error === 'VrfKeyError' ? VrfKeyError : VrfProofError
      expect(caught).toBeInstanceOf(ErrorClass)
      const e = caught as VrfProofError | VrfKeyError
      expect(e.reason).toBe(f.reason)
      expect(e.details.reason).toBe(f.reason)
      expect(e.code).toBe(f.error === 'VrfKeyError' ? 'VRF_KEY' : 'VRF_PROOF')
      // proofToHash decodes the same way: a malformed proof never yields an output either.
      if (['length', 'gamma', 's-range'].includes(f.reason!))
        expect(() => proofToHash(suite, hex(f.pi!))).toThrow(VrfProofError)
    })
  }
})

describe('ECVRF on secp256k1, round trips', () => {
  const suite = SECP256K1_SHA256_TAI
  it('proves and verifies 20 random keys and inputs; outputs differ per key and per input', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) {
      const sk = secp256k1.utils.randomSecretKey()
      const alpha = randomBytes(i)
      const pi = prove(suite, sk, alpha)
      expect(pi.length).toBe(81)
      const beta = verify(suite, publicKeyOf(suite, sk), alpha, pi)
      expect(prove(suite, sk, alpha)).toEqual(pi) // deterministic
      seen.add(toHexString(beta))
    }
    expect(seen.size).toBe(20)
  })
  it('refuses secret keys out of range with VrfKeyError secret-key', () => {
    const n = suite.Point.Fn.ORDER
    for (const sk of [new Uint8Array(32), hex(n.toString(16)), new Uint8Array(31).fill(1)]) {
      expect(() => prove(suite, sk, new Uint8Array())).toThrow(
        expect.objectContaining({ name: 'VrfKeyError', reason: 'secret-key' }),
      )
    }
  })
  it('refuses a non-Uint8Array argument with a TypeError', () => {
    const sk = secp256k1.utils.randomSecretKey()
    expect(() => prove(suite, sk, 'abc' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() =>
      verify(suite, publicKeyOf(suite, sk), new Uint8Array(), [1] as unknown as Uint8Array),
    ).toThrow(TypeError)
  })
})
