import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js'
import { decodeProof, decodePublicKey, encodeToCurveCounted, verify } from './ecvrf.ts'
import { VrfEncodeError, VrfKeyError } from './errors.ts'
import { SECP256K1_SHA256_TAI } from './suite.ts'

/** An affine point as the contract takes it: [x, y]. */
export type AffinePair = readonly [bigint, bigint]

/**
 * The arguments of `VrfVerifier.verify(pk, alpha, proof)` / `Secp256k1Vrf.verify`: the key and
 * the proof in affine coordinates, plus the three witness points the contract checks with
 * ecrecover instead of multiplying.
 */
export interface OnchainVrfProof {
  readonly publicKey: AffinePair
  readonly proof: {
    readonly gamma: AffinePair
    readonly c: bigint
    readonly s: bigint
    /** U = s·G − c·Y. */
    readonly u: AffinePair
    /** s·H. */
    readonly sH: AffinePair
    /** c·Gamma. */
    readonly cGamma: AffinePair
  }
  /** The VRF output the contract returns (32 bytes). */
  readonly beta: Uint8Array
  /** How many try-and-increment hashes encode_to_curve takes (1 half the time; gas grows with it). */
  readonly tries: number
}

const pair = (p: WeierstrassPoint<bigint>): AffinePair => [p.x, p.y]

/**
 * Verifies a secp256k1 proof off chain and computes what the contract needs to verify it on
 * chain (ECVRF-SECP256K1-SHA256-TAI only: ecrecover is secp256k1).
 *
 * @throws {VrfKeyError} `public-key`, or `onchain` when the key's x ≥ n (probability ~2⁻¹²⁸:
 *   ecrecover cannot check it; pick another key).
 * @throws {VrfProofError} when the proof does not verify.
 * @throws {VrfEncodeError} when H or Gamma has x ≥ n, or s·H = ±c·Gamma (each ~2⁻¹²⁸).
 */
export function onchainProof(
  publicKey: Uint8Array,
  alpha: Uint8Array,
  proof: Uint8Array,
): OnchainVrfProof {
  const suite = SECP256K1_SHA256_TAI
  const Y = decodePublicKey(suite, publicKey)
  const n = suite.Point.Fn.ORDER
  if (Y.x >= n)
    throw new VrfKeyError('onchain', 'VRF public key cannot be checked on chain (x ≥ n)', {
      hint: 'Generate another key; this happens with probability ~2^-128.',
    })
  const beta = verify(suite, publicKey, alpha, proof)
  const { gamma, c, s } = decodeProof(suite, proof)
  const { point: H, tries } = encodeToCurveCounted(suite, publicKey, alpha)
  const sH = H.multiply(s)
  const cGamma = gamma.multiply(c)
  if (H.x >= n || gamma.x >= n || sH.x === cGamma.x)
    throw new VrfEncodeError('VRF proof has no on-chain witness', {
      hint: 'Happens with probability ~2^-128; use another input.',
    })
  const u = suite.Point.BASE.mulAddUnsafe(s, Y, suite.Point.Fn.neg(c))
  return {
    publicKey: pair(Y),
    proof: { gamma: pair(gamma), c, s, u: pair(u), sH: pair(sH), cGamma: pair(cGamma) },
    beta,
    tries,
  }
}
