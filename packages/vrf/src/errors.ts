/**
 * Typed errors of `@digicap/vrf`. Everything this package throws across its boundary is one of
 * these, or a `TypeError` for an argument that is not a `Uint8Array` (noble's convention). Secret keys are never copied into a message.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Why a VRF proof was refused; stable, one per check, in the order `verify` runs them. */
export type VrfProofReason =
  /** pi is not ptLen + cLen + qLen bytes. */
  | 'length'
  /** Gamma is not a valid compressed point of the suite's curve (bad prefix, x ≥ p, not on the curve). */
  | 'gamma'
  /** s ≥ q: a non-canonical scalar, refused so that one output has one proof encoding. */
  | 's-range'
  /** The recomputed challenge differs: the proof is not for this key and input. */
  | 'challenge'

/**
 * A VRF proof is malformed or does not verify. `details.reason` says which check refused it
 * ({@link VrfProofReason}), `details.suite` the ciphersuite.
 */
export class VrfProofError extends DigicapError {
  override name = 'VrfProofError'
  readonly reason: VrfProofReason
  constructor(
    reason: VrfProofReason,
    shortMessage: string,
    options: Omit<DigicapErrorOptions, 'details'> & { details?: Record<string, unknown> } = {},
  ) {
    super('VRF_PROOF', shortMessage, { ...options, details: { reason, ...options.details } })
    this.reason = reason
  }
}

/** Why a VRF key was refused. */
export type VrfKeyReason =
  /** A public key that is not a valid compressed point of the suite's curve, or the identity. */
  | 'public-key'
  /** A secret key that is not 1 ≤ x < q (or not qLen bytes). */
  | 'secret-key'
  /** A key the on-chain verifier cannot use (secp256k1 x-coordinate ≥ n, probability ~2⁻¹²⁸). */
  | 'onchain'

/** A VRF key is unusable. `details.reason` is a {@link VrfKeyReason}. */
export class VrfKeyError extends DigicapError {
  override name = 'VrfKeyError'
  readonly reason: VrfKeyReason
  constructor(
    reason: VrfKeyReason,
    shortMessage: string,
    options: Omit<DigicapErrorOptions, 'details'> & { details?: Record<string, unknown> } = {},
  ) {
    super('VRF_KEY', shortMessage, { ...options, details: { reason, ...options.details } })
    this.reason = reason
  }
}

/**
 * Try-and-increment found no point in 256 counters (probability ~2⁻²⁵⁶ for an honest input), or
 * a proof needs an on-chain witness that does not exist for it (probability ~2⁻¹²⁸).
 */
export class VrfEncodeError extends DigicapError {
  override name = 'VrfEncodeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('VRF_ENCODE', shortMessage, options)
  }
}
