import type { WeierstrassPointCons } from '@noble/curves/abstract/weierstrass.js'
import { p256 } from '@noble/curves/nist.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { sha256 } from '@noble/hashes/sha2.js'
import type { CHash } from '@noble/hashes/utils.js'

/** A hash as noble exposes it (callable, with outputLen and blockLen for HMAC). */
export type SuiteHash = CHash

/**
 * An ECVRF ciphersuite on a prime-order short-Weierstrass curve (RFC 9381 §5.5 shape):
 * try-and-increment encode_to_curve, RFC 6979 nonces, SEC1 compressed points.
 * The curve arithmetic is noble's; this package only strings the RFC's steps together.
 */
export interface EcvrfSuite {
  /** The RFC's name of the suite, for messages. */
  readonly name: string
  /** suite_string: one byte that separates this suite's hashes from every other suite's. */
  readonly suiteString: number
  /** noble's point constructor of the curve (cofactor 1). */
  readonly Point: WeierstrassPointCons<bigint>
  /** Hash (SHA-256 in both suites here); hLen ≥ fLen. */
  readonly hash: SuiteHash
  /** cLen: challenge length in bytes (16 for 128-bit security). */
  readonly cLen: number
}

/**
 * ECVRF-P256-SHA256-TAI (RFC 9381 §5.5, suite_string 0x01). Here to prove the generic code
 * against the RFC's Appendix B.1 vectors.
 */
export const P256_SHA256_TAI: EcvrfSuite = Object.freeze({
  name: 'ECVRF-P256-SHA256-TAI',
  suiteString: 0x01,
  Point: p256.Point,
  hash: sha256,
  cLen: 16,
})

/**
 * ECVRF-SECP256K1-SHA256-TAI: the P-256 suite's structure on secp256k1 (hash SHA-256, cLen 16,
 * try-and-increment with the compressed public key as salt), suite_string 0xFE as in
 * vrf-rs / vrf-go (SEDA), whose published proofs this implementation reproduces. secp256k1
 * because the EVM's ecrecover makes on-chain verification cheap (see `onchainProof`).
 */
export const SECP256K1_SHA256_TAI: EcvrfSuite = Object.freeze({
  name: 'ECVRF-SECP256K1-SHA256-TAI',
  suiteString: 0xfe,
  Point: secp256k1.Point,
  hash: sha256,
  cLen: 16,
})

/** Byte lengths of a suite: fLen (field), qLen (scalar), ptLen (compressed point), proof. */
export function suiteLengths(suite: EcvrfSuite): {
  fLen: number
  qLen: number
  ptLen: number
  proofLen: number
} {
  const fLen = suite.Point.Fp.BYTES
  const qLen = suite.Point.Fn.BYTES
  const ptLen = fLen + 1
  return { fLen, qLen, ptLen, proofLen: ptLen + suite.cLen + qLen }
}
