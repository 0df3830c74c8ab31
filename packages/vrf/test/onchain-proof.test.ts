import { secp256k1 } from '@noble/curves/secp256k1.js'
import { describe, expect, it } from 'vitest'
import {
  encodeToCurve,
  onchainProof,
  prove,
  publicKeyOf,
  SECP256K1_SHA256_TAI as suite,
  VrfKeyError,
  VrfProofError,
} from '../src/index.ts'

describe('onchainProof (the witness the contract checks instead of multiplying)', () => {
  it('gives U = s·G − c·Y, s·H and c·Gamma, and the verified beta', () => {
    const sk = secp256k1.utils.randomSecretKey()
    const pk = publicKeyOf(suite, sk)
    const alpha = new TextEncoder().encode('job 1')
    const o = onchainProof(pk, alpha, prove(suite, sk, alpha))
    const Y = suite.Point.fromBytes(pk)
    const G = suite.Point.BASE
    const at = (p: readonly [bigint, bigint]) => suite.Point.fromAffine({ x: p[0], y: p[1] })
    const { gamma, c, s } = o.proof
    expect(at(o.proof.u).equals(G.multiply(s).subtract(Y.multiply(c)))).toBe(true)
    expect(at(o.proof.sH).equals(encodeToCurve(suite, pk, alpha).multiply(s))).toBe(true)
    expect(at(o.proof.cGamma).equals(at(gamma).multiply(c))).toBe(true)
    expect(o.publicKey).toEqual([Y.x, Y.y])
    expect(o.beta.length).toBe(32)
    expect(o.tries).toBeGreaterThanOrEqual(1)
  })

  it('refuses a proof that does not verify (VrfProofError) before making any witness', () => {
    const sk = secp256k1.utils.randomSecretKey()
    const pi = prove(suite, sk, Uint8Array.of(1))
    expect(() => onchainProof(publicKeyOf(suite, sk), Uint8Array.of(2), pi)).toThrow(VrfProofError)
  })

  it('refuses a key whose x ≥ n, which ecrecover cannot take (VrfKeyError onchain)', () => {
    const n = suite.Point.Fn.ORDER
    let key: Uint8Array | undefined
    for (let x = n; !key; x++) {
      const bytes = Uint8Array.from(Buffer.from(`02${x.toString(16)}`, 'hex'))
      try {
        suite.Point.fromBytes(bytes)
        key = bytes
      } catch {}
    }
    const pi = prove(suite, secp256k1.utils.randomSecretKey(), Uint8Array.of(1))
    let caught: unknown
    try {
      onchainProof(key!, Uint8Array.of(1), pi)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(VrfKeyError)
    expect((caught as VrfKeyError).reason).toBe('onchain')
  })
})
