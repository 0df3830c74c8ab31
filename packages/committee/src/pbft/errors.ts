/**
 * Typed errors of the PBFT agreement. `details.reason` names the check that refused the input;
 * reasons are stable once published.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

type Options = Omit<DigicapErrorOptions, 'details'> & { details?: Record<string, unknown> }

/** Why a certificate was refused, in the order {@link verifyCertificate} checks. */
export type CertificateReason =
  /** Chain id, contract or job id differ from what the caller expects. */
  | 'wrong-job'
  /** Verdict outside 0..7, or an evidence hash that is not 32 bytes. */
  | 'value'
  /** Fewer than 2f+1 signatures, or signers and signatures of different lengths. */
  | 'short'
  /** Signers not strictly ascending (a duplicate or an unsorted list). */
  | 'unsorted'
  /** A signer that is not a committee member. */
  | 'non-member'
  /** A signature that does not recover its signer over the certificate's commit digest. */
  | 'signature'

/** A certificate does not prove a committee decision. */
export class CertificateError extends DigicapError {
  override name = 'CertificateError'
  readonly reason: CertificateReason
  constructor(reason: CertificateReason, shortMessage: string, options: Options = {}) {
    super('PBFT_CERTIFICATE', shortMessage, { ...options, details: { reason, ...options.details } })
    this.reason = reason
  }
}

/** Why an equivocation proof was refused. */
export type EquivocationReason =
  /** The two votes differ in phase, job or view, or carry the same value. */
  | 'not-conflicting'
  /** A signature does not recover the accused member. */
  | 'signature'
  /** The accused is not a committee member. */
  | 'non-member'
  /** A phase that cannot equivocate (view-change votes may legitimately repeat). */
  | 'phase'

/** An equivocation proof does not prove that its member signed two conflicting votes. */
export class EquivocationError extends DigicapError {
  override name = 'EquivocationError'
  readonly reason: EquivocationReason
  constructor(reason: EquivocationReason, shortMessage: string, options: Options = {}) {
    super('PBFT_EQUIVOCATION', shortMessage, {
      ...options,
      details: { reason, ...options.details },
    })
    this.reason = reason
  }
}

/**
 * Why a received vote was dropped. `out-of-view`: more than `MAX_VIEWS_AHEAD` views ahead, or a
 * pre-prepare for a view the replica has left; `replayed`: the same vote again (counted once);
 * `equivocation`: a second, different vote of one member in one slot (the first is kept and the
 * pair reported as an `EquivocationProof`).
 */
export type VoteReason =
  | 'wrong-job'
  | 'non-member'
  | 'signature'
  | 'not-leader'
  | 'proof'
  | 'value'
  | 'out-of-view'
  | 'replayed'
  | 'equivocation'

/** A vote or its proof is invalid; the replica drops it and keeps going. */
export class PbftVoteError extends DigicapError {
  override name = 'PbftVoteError'
  readonly reason: VoteReason
  constructor(reason: VoteReason, shortMessage: string, options: Options = {}) {
    super('PBFT_VOTE', shortMessage, { ...options, details: { reason, ...options.details } })
    this.reason = reason
  }
}

/**
 * A node's PBFT endpoint refused to open another round: it runs `maxSessions` already, or the
 * job ids are another open round's. Back-pressure: the caller waits for a round to end.
 */
export class PbftBusyError extends DigicapError {
  override name = 'PbftBusyError'
  constructor(shortMessage: string, options: Options = {}) {
    super('PBFT_BUSY', shortMessage, options)
  }
}

/**
 * Why a member's own vote was not signed (slashing protection, ADR 0093):
 * - `conflict`: the record holds another digest for this slot (job or before round, phase, view):
 *   signing would be an equivocation the hub slashes;
 * - `closed`: the round's job was settled or timed out and its slots pruned: nothing is signed
 *   for it again;
 * - `full`: the record holds its most slots of open rounds (none is dropped to make room);
 * - `corrupt`: the record does not read as one this version wrote (cut, garbled, another
 *   version), or a stored signature does not recover to this member;
 * - `missing`: no record where a node that has signed keeps one;
 * - `identity`: the record is another member's;
 * - `io`: the record could not be written (the vote is not sent).
 */
export type SignedVoteReason =
  | 'conflict'
  | 'closed'
  | 'full'
  | 'corrupt'
  | 'missing'
  | 'identity'
  | 'io'

/**
 * The signed-vote record refused (or could not back) a signature: the vote is not sent. Fail
 * closed: a member never signs without a record it can read and write.
 */
export class SignedVoteError extends DigicapError {
  override name = 'SignedVoteError'
  readonly reason: SignedVoteReason
  constructor(reason: SignedVoteReason, shortMessage: string, options: Options = {}) {
    super('PBFT_SIGNED_VOTE', shortMessage, {
      ...options,
      details: { reason, ...options.details },
    })
    this.reason = reason
  }
}
