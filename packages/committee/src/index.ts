/**
 * @packageDocumentation
 *
 * `@digicap/committee` — who verifies a job. An ECVRF (RFC 9381 structure, try-and-increment)
 * written once over any prime-order short-Weierstrass curve of noble, proven against the RFC's
 * P-256 vectors and used on secp256k1, where the EVM checks a proof with ecrecover witnesses
 * (`onchainProof`); top-k sortition weighted by stake × reputation (ADR 0024); the earned
 * reputation curve.
 *
 * Guarantees: a proof verifies only for the key and input it was made for (`verify` throws a
 * typed `VrfProofError` otherwise, with the check that refused it); one key and input have one
 * output (deterministic nonces, canonical s, compressed points only); every observer given the
 * same tickets draws the same committee, and `SortitionScore.sol` scores bit for bit alike
 * (integer-only ranking).
 *
 * @example
 * ```ts
 * import { SECP256K1_SHA256_TAI as suite, prove, publicKeyOf, verify } from '@digicap/committee'
 * import { secp256k1 } from '@noble/curves/secp256k1.js'
 *
 * const sk = secp256k1.utils.randomSecretKey()
 * const pi = prove(suite, sk, seed)
 * const beta = verify(suite, publicKeyOf(suite, sk), seed, pi) // 32 bytes, or a VrfProofError
 * ```
 */

export type { SortitionReason, VrfKeyReason, VrfProofReason } from './errors.ts'
export { SortitionError, VrfEncodeError, VrfKeyError, VrfProofError } from './errors.ts'
export * from './pbft/index.ts'
export type { ReputationEvent } from './reputation/curve.ts'
export {
  nextReputation,
  passesToReach,
  REPUTATION_GROWTH_DIVISOR,
  REPUTATION_INITIAL,
  REPUTATION_MAX,
  reputationAfter,
} from './reputation/curve.ts'
export {
  BEFORE_FAIL,
  BEFORE_PASS,
  beforeCertificateCall,
  beforeRoundId,
} from './settlement/before.ts'
export type { HubValue, HubVote } from './settlement/calls.ts'
export {
  certificateCall,
  equivocationCall,
  hubCommittee,
  PASS_VERDICT,
} from './settlement/calls.ts'
export type { DrawCommitteeOptions, RankedTicket, Ticket } from './sortition/committee.ts'
export {
  committeeSize,
  drawCommittee,
  rankTickets,
  selectionWeight,
} from './sortition/committee.ts'
export { LOG2_FRACTION_BITS, negLog2Uniform, sortitionScore } from './sortition/score.ts'
export { jobSeed } from './sortition/seed.ts'
export type { VrfTicket } from './sortition/ticket.ts'
export { drawTicket, verifyTicket } from './sortition/ticket.ts'
export type { DecodedProof } from './vrf/ecvrf.ts'
export {
  challenge,
  decodeProof,
  decodePublicKey,
  encodeToCurve,
  proofToHash,
  prove,
  publicKeyOf,
  verify,
} from './vrf/ecvrf.ts'
export type { AffinePair, OnchainVrfProof } from './vrf/onchain.ts'
export { onchainProof } from './vrf/onchain.ts'
export type { EcvrfSuite, SuiteHash } from './vrf/suite.ts'
export { P256_SHA256_TAI, SECP256K1_SHA256_TAI, suiteLengths } from './vrf/suite.ts'
