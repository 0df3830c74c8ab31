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
