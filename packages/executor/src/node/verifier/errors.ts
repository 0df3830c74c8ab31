/** The verifier role's typed error (DigicapError, code `VERIFIER_JOB`). */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Why a committee member gave up a job. */
export type VerifierJobReason =
  | 'not-member'
  | 'seating'
  | 'executor-unregistered'
  | 'pbft-timeout'
  | 'stopped'
  | 'round'
  /** The node runs and queues as many jobs' rounds as it may (back-pressure). */
  | 'busy'
  /** The job timed out on chain while this member waited for a round (ADR 0056). */
  | 'expired'

/** A job this member could not take to a certificate; `reason` says at which step. */
export class VerifierJobError extends DigicapError {
  override name = 'VerifierJobError'
  readonly reason: VerifierJobReason
  constructor(reason: VerifierJobReason, shortMessage: string, options: DigicapErrorOptions = {}) {
    super('VERIFIER_JOB', shortMessage, {
      ...options,
      details: { reason, ...options.details },
    })
    this.reason = reason
  }
}

/** Why a member refused another member's forwarded answer (ADR 0095). */
export type ForwardRefusal =
  /** No watch of this job on this node. */
  | 'unknown-job'
  /** The challenge's signer (or the sender) is not seated on the job's committee. */
  | 'non-member'
  /** The challenge signature does not recover (malformed, high s). */
  | 'signature'
  /** The signed block hash is no block of this node's chain. */
  | 'unknown-block'
  /** The signed block is older than the job's watch (the sortition window's last block). */
  | 'stale'
  /** The quote shows another phase than the one it was forwarded for. */
  | 'wrong-phase'
  /** The quote does not verify (`details.check`: the attestation check's code). */
  | 'evidence'

/** A forwarded answer a member does not count (code `VERIFIER_FORWARD`). */
export class ForwardRefusedError extends DigicapError {
  override name = 'ForwardRefusedError'
  readonly reason: ForwardRefusal
  constructor(reason: ForwardRefusal, shortMessage: string, options: DigicapErrorOptions = {}) {
    super('VERIFIER_FORWARD', shortMessage, {
      ...options,
      details: { reason, ...options.details },
    })
    this.reason = reason
  }
}

/**
 * This member's own key signed a vote that conflicts with one its node signed (code
 * `VERIFIER_OWN_EQUIVOCATION`): another process holds the key. The node does not report
 * itself (ADR 0092 amendment): the members that caught it do, and the share is theirs.
 */
export class OwnEquivocationError extends DigicapError {
  override name = 'OwnEquivocationError'
  constructor(options: DigicapErrorOptions = {}) {
    super(
      'VERIFIER_OWN_EQUIVOCATION',
      "This member's key signed a vote its node did not: another process holds the key",
      {
        hint: 'Stop every other process that signs with this account (a second node, a restored copy) or move the stake off a leaked key; the other members report the equivocation, this node does not report itself',
        ...options,
      },
    )
  }
}
