/**
 * The owner signature on a parsed header, checked once: {@link verifiedCapsuleHeader} checks it
 * and returns a proof that an open takes (`OpenOptions.verified`) instead of checking again; the
 * executor checks a header while it fetches the capsule and opens the payload later.
 *
 * A proof cannot be forged: each one is recorded in a WeakMap of this module, which no other
 * module sees, and an open refuses anything else given as a proof. It cannot be replayed on
 * another header either: it holds the EIP-712 digest and the signature it checked, and an open
 * takes it only for a header with that very signature whose fields still hash to that digest;
 * a header changed since (any signed field, or the signature) is checked again in full.
 */
import { channel } from 'node:diagnostics_channel'
import { capsuleSigningDigest } from './eip712/capsule-typed-data.ts'
import { recoverDigestSigner } from './eip712/signature.ts'
import { type Address, normalizeAddress } from './encoding/address.ts'
import { equalBytes } from './encoding/bytes.ts'
import { CapsuleSignatureError, InvalidArgumentError } from './errors.ts'
import type { ParsedCapsuleHeader } from './parse.ts'

declare const verifiedBrand: unique symbol

/** Proof that capsule-core checked a parsed header's owner signature; see {@link verifiedCapsuleHeader}. */
export interface VerifiedCapsuleHeader {
  /** The owner, whose signature holds. */
  readonly owner: Address
  /** Only {@link verifiedCapsuleHeader} makes one (and it is checked at run time too). */
  readonly [verifiedBrand]: true
}

/** What a proof was given for. */
interface Checked {
  readonly owner: Address
  readonly digest: Uint8Array
  readonly signature: Uint8Array
}

const proofs = new WeakMap<object, Checked>()

/**
 * The `node:diagnostics_channel` name on which every owner-signature check of a header (a
 * secp256k1 recovery, the costly part) publishes `{ capsuleId }` before it runs: for tracing,
 * and to count the checks a path makes. Nothing is built when nobody subscribes.
 */
export const HEADER_SIGNATURE_CHANNEL = 'digicap:capsule-core:header-signature'
const signatureChecks = channel(HEADER_SIGNATURE_CHANNEL)

/**
 * Recovers the signer of the header's EIP-712 digest; it must be the header's owner (and
 * `options.owner` when given).
 *
 * @throws {CapsuleSignatureError} if the signature is malformed, from someone else, or the owner differs.
 */
export function checkHeaderSignature(
  p: ParsedCapsuleHeader,
  options: { owner?: Address | undefined } = {},
): { owner: Address; digest: Uint8Array } {
  const digest = capsuleSigningDigest(p.header)
  if (signatureChecks.hasSubscribers) signatureChecks.publish({ capsuleId: p.header.capsuleId })
  const signer = recoverDigestSigner(digest, p.signature)
  if (signer !== p.header.owner) {
    throw new CapsuleSignatureError('header signature is not from the header owner', {
      details: { owner: p.header.owner, signer },
    })
  }
  if (options.owner !== undefined && normalizeAddress(options.owner, 'owner') !== p.header.owner) {
    throw new CapsuleSignatureError('capsule owner is not the expected owner', {
      details: { owner: p.header.owner, expected: options.owner },
    })
  }
  return { owner: signer, digest }
}

/**
 * Verifies the owner's signature on a parsed header, as `verifyCapsuleHeader` does, and returns
 * the proof of it: give it to an open of the same header (`{ dataKey, verified }`) and the
 * open does not check the signature again.
 *
 * @param options.owner - if given, the header's owner must also equal this address.
 * @throws {CapsuleSignatureError} if the signature is malformed, from someone else, or the owner differs.
 * @example
 * ```ts
 * const verified = verifiedCapsuleHeader(parsed) // while the payload still arrives
 * const opener = prepareOpen(parsed, { dataKey, verified }) // later: no second check
 * ```
 */
export function verifiedCapsuleHeader(
  parsed: ParsedCapsuleHeader,
  options: { owner?: Address } = {},
): VerifiedCapsuleHeader {
  const { owner, digest } = checkHeaderSignature(parsed, options)
  const proof = Object.freeze({ owner }) as VerifiedCapsuleHeader
  proofs.set(proof, { owner, digest, signature: parsed.signature.slice() })
  return proof
}

/**
 * Whether `verified` proves `parsed`'s signature as it is now (and its owner is `owner`, when
 * given). False sends the caller to the full check.
 *
 * @throws {InvalidArgumentError} if `verified` is not a proof {@link verifiedCapsuleHeader} made.
 */
export function provesHeader(
  verified: VerifiedCapsuleHeader,
  parsed: ParsedCapsuleHeader,
  owner: Address | undefined,
): boolean {
  const checked = proofs.get(verified)
  if (checked === undefined) {
    throw new InvalidArgumentError('verified is not a proof capsule-core made', {
      hint: 'Pass the value verifiedCapsuleHeader returned, or leave `verified` out to check the header here.',
    })
  }
  if (owner !== undefined && normalizeAddress(owner, 'owner') !== checked.owner) return false
  return (
    equalBytes(parsed.signature, checked.signature) &&
    equalBytes(capsuleSigningDigest(parsed.header), checked.digest)
  )
}

/**
 * `options.verified` when it proves `parsed` as it is now, else a new proof (the signature
 * checked here): one check, whoever made it.
 *
 * @throws {CapsuleSignatureError} | {@link InvalidArgumentError}, as {@link verifiedCapsuleHeader} and {@link provesHeader}.
 */
export function verifyOnce(
  parsed: ParsedCapsuleHeader,
  options: { verified?: VerifiedCapsuleHeader; owner?: Address },
): VerifiedCapsuleHeader {
  if (options.verified !== undefined && provesHeader(options.verified, parsed, options.owner)) {
    return options.verified
  }
  return verifiedCapsuleHeader(parsed, options.owner === undefined ? {} : { owner: options.owner })
}
