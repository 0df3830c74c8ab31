import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js'
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { VrfEncodeError, VrfKeyError, VrfProofError } from './errors.ts'
import { nonceRfc6979 } from './nonce.ts'
import { type EcvrfSuite, suiteLengths } from './suite.ts'

type Point = WeierstrassPoint<bigint>

/** RFC 9381 domain separators (§5.4.1.1, §5.4.3, §5.2). */
const ENCODE_FRONT = 0x01
const CHALLENGE_FRONT = 0x02
const PROOF_TO_HASH_FRONT = 0x03
const BACK = 0x00

/** A decoded proof: Gamma, the challenge c and the response s. */
export interface DecodedProof {
  readonly gamma: Point
  readonly c: bigint
  readonly s: bigint
}

function bytesArg(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`)
  return value
}

/** string_to_point for a compressed SEC1 point, strictly: ptLen bytes, prefix 0x02/0x03, on the curve. */
function decodePoint(suite: EcvrfSuite, bytes: Uint8Array): Point | undefined {
  const { ptLen } = suiteLengths(suite)
  if (bytes.length !== ptLen || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return undefined
  try {
    return suite.Point.fromBytes(bytes)
  } catch {
    return undefined
  }
}

/** point_to_string: compressed SEC1. */
const encodePoint = (p: Point): Uint8Array => p.toBytes(true)

/**
 * The public key Y = x·B of a secret key, as a compressed point (PK_string).
 *
 * @throws {VrfKeyError} `secret-key` when the key is not qLen bytes or not 1 ≤ x < q.
 */
export function publicKeyOf(suite: EcvrfSuite, secretKey: Uint8Array): Uint8Array {
  return encodePoint(suite.Point.BASE.multiply(secretScalar(suite, secretKey)))
}

function secretScalar(suite: EcvrfSuite, secretKey: Uint8Array): bigint {
  bytesArg(secretKey, 'secretKey')
  const { qLen } = suiteLengths(suite)
  const x = secretKey.length === qLen ? bytesToNumberBE(secretKey) : 0n
  if (x < 1n || x >= suite.Point.Fn.ORDER)
    throw new VrfKeyError('secret-key', 'VRF secret key out of range', {
      details: { suite: suite.name, length: secretKey.length, expectedLength: qLen },
      hint: 'Use qLen random bytes below the group order (noble: `secp256k1.utils.randomSecretKey()`).',
    })
  return x
}

/**
 * Decodes and validates a public key (RFC 9381 §5.4.5 validate_key for cofactor-1 curves:
 * a valid point that is not the identity).
 *
 * @throws {VrfKeyError} `public-key`.
 */
export function decodePublicKey(suite: EcvrfSuite, publicKey: Uint8Array): Point {
  bytesArg(publicKey, 'publicKey')
  const y = decodePoint(suite, publicKey)
  if (!y || y.is0())
    throw new VrfKeyError('public-key', 'VRF public key is not a valid point', {
      details: { suite: suite.name, length: publicKey.length },
      hint: `A public key is a ${suiteLengths(suite).ptLen}-byte compressed SEC1 point.`,
    })
  return y
}

/**
 * encode_to_curve by try-and-increment (RFC 9381 §5.4.1.1) with salt = PK_string: the first
 * counter whose Hash(suite ‖ 0x01 ‖ salt ‖ alpha ‖ ctr ‖ 0x00) is the x of a point with even y.
 *
 * @throws {VrfEncodeError} when no counter in 0..255 works (never, for any real input).
 */
export function encodeToCurve(suite: EcvrfSuite, salt: Uint8Array, alpha: Uint8Array): Point {
  return encodeToCurveCounted(suite, salt, alpha).point
}

/** {@link encodeToCurve}, also saying how many hashes it took (on chain, each costs gas). */
export function encodeToCurveCounted(
  suite: EcvrfSuite,
  salt: Uint8Array,
  alpha: Uint8Array,
): { point: Point; tries: number } {
  const { fLen } = suiteLengths(suite)
  for (let ctr = 0; ctr < 256; ctr++) {
    const hash = suite.hash(
      concatBytes(
        Uint8Array.of(suite.suiteString, ENCODE_FRONT),
        salt,
        alpha,
        Uint8Array.of(ctr, BACK),
      ),
    )
    const h = decodePoint(suite, concatBytes(Uint8Array.of(0x02), hash.subarray(0, fLen)))
    if (h) return { point: h, tries: ctr + 1 } // cofactor 1: no clearing
  }
  throw new VrfEncodeError('encode_to_curve found no point in 256 tries', {
    details: { suite: suite.name },
  })
}

/** challenge_generation (RFC 9381 §5.4.3): the first cLen bytes of the hash, as an integer. */
export function challenge(suite: EcvrfSuite, points: readonly Point[]): bigint {
  const digest = suite.hash(
    concatBytes(
      Uint8Array.of(suite.suiteString, CHALLENGE_FRONT),
      ...points.map(encodePoint),
      Uint8Array.of(BACK),
    ),
  )
  return bytesToNumberBE(digest.subarray(0, suite.cLen))
}

/**
 * ECVRF_prove (RFC 9381 §5.1): pi = Gamma ‖ c ‖ s for input `alpha` under `secretKey`.
 * Deterministic: one key and one input give one proof.
 *
 * @throws {VrfKeyError} `secret-key`.
 * @example
 * ```ts
 * const pi = prove(SECP256K1_SHA256_TAI, secretKey, seed)
 * const beta = verify(SECP256K1_SHA256_TAI, publicKeyOf(SECP256K1_SHA256_TAI, secretKey), seed, pi)
 * ```
 */
export function prove(suite: EcvrfSuite, secretKey: Uint8Array, alpha: Uint8Array): Uint8Array {
  bytesArg(alpha, 'alpha')
  const x = secretScalar(suite, secretKey)
  const { qLen } = suiteLengths(suite)
  const B = suite.Point.BASE
  const Y = B.multiply(x)
  const H = encodeToCurve(suite, encodePoint(Y), alpha)
  const hString = encodePoint(H)
  const gamma = H.multiply(x)
  const k = nonceRfc6979(suite, x, hString)
  const c = challenge(suite, [Y, H, gamma, B.multiply(k), H.multiply(k)])
  const s = suite.Point.Fn.create(k + c * x)
  return concatBytes(encodePoint(gamma), numberToBytesBE(c, suite.cLen), numberToBytesBE(s, qLen))
}

/**
 * ECVRF_decode_proof (RFC 9381 §5.4.4), strict.
 *
 * @throws {VrfProofError} `length`, `gamma` or `s-range`.
 */
export function decodeProof(suite: EcvrfSuite, proof: Uint8Array): DecodedProof {
  bytesArg(proof, 'proof')
  const { ptLen, proofLen } = suiteLengths(suite)
  if (proof.length !== proofLen)
    throw new VrfProofError('length', 'VRF proof has the wrong length', {
      details: { suite: suite.name, length: proof.length, expected: proofLen },
    })
  const gamma = decodePoint(suite, proof.subarray(0, ptLen))
  if (!gamma)
    throw new VrfProofError('gamma', 'VRF proof Gamma is not a point of the curve', {
      details: { suite: suite.name },
    })
  const c = bytesToNumberBE(proof.subarray(ptLen, ptLen + suite.cLen))
  const s = bytesToNumberBE(proof.subarray(ptLen + suite.cLen))
  if (s >= suite.Point.Fn.ORDER)
    throw new VrfProofError('s-range', 'VRF proof scalar s is not below the group order', {
      details: { suite: suite.name },
    })
  return { gamma, c, s }
}

/** beta = Hash(suite ‖ 0x03 ‖ point_to_string(Gamma) ‖ 0x00) (RFC 9381 §5.2; cofactor 1). */
function gammaToHash(suite: EcvrfSuite, gamma: Point): Uint8Array {
  return suite.hash(
    concatBytes(
      Uint8Array.of(suite.suiteString, PROOF_TO_HASH_FRONT),
      encodePoint(gamma),
      Uint8Array.of(BACK),
    ),
  )
}

/**
 * ECVRF_proof_to_hash (RFC 9381 §5.2): the output beta of a proof. It does NOT verify the proof:
 * use {@link verify}, which returns the same beta, for anything that came from elsewhere.
 *
 * @throws {VrfProofError} `length`, `gamma` or `s-range` for a malformed proof.
 */
export function proofToHash(suite: EcvrfSuite, proof: Uint8Array): Uint8Array {
  return gammaToHash(suite, decodeProof(suite, proof).gamma)
}

/**
 * ECVRF_verify (RFC 9381 §5.3, with validate_key): returns beta when `proof` is the proof of
 * `alpha` under `publicKey`, and throws otherwise.
 *
 * @throws {VrfKeyError} `public-key` for a key that is not a valid non-identity point.
 * @throws {VrfProofError} `length`, `gamma`, `s-range` or `challenge`.
 */
export function verify(
  suite: EcvrfSuite,
  publicKey: Uint8Array,
  alpha: Uint8Array,
  proof: Uint8Array,
): Uint8Array {
  bytesArg(alpha, 'alpha')
  const Y = decodePublicKey(suite, publicKey)
  const { gamma, c, s } = decodeProof(suite, proof)
  const H = encodeToCurve(suite, publicKey, alpha)
  const minusC = suite.Point.Fn.neg(c)
  // U = s·B − c·Y, V = s·H − c·Gamma; public scalars, so the faster non-constant-time paths.
  const U = suite.Point.BASE.mulAddUnsafe(s, Y, minusC)
  const V = H.mulAddUnsafe(s, gamma, minusC)
  if (U.is0() || V.is0() || challenge(suite, [Y, H, gamma, U, V]) !== c)
    throw new VrfProofError('challenge', 'VRF proof does not verify for this key and input', {
      details: { suite: suite.name },
      hint: 'The proof was made for another key or input, or was altered.',
    })
  return gammaToHash(suite, gamma)
}
