/**
 * Typed errors of `@digicap/committee`. Everything this package throws across its boundary is
 * one of these, a VRF error of `@digicap/vrf` (`VrfProofError`, `VrfKeyError`) from a ticket that
 * does not verify, or an `InvalidArgumentError` from `@digicap/capsule-core` for a caller's own
 * argument of the wrong type. Secret keys are never copied into a message.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Why a committee could not be drawn. */
export type SortitionReason =
  /** Two tickets carry the same node id. */
  | 'duplicate-ticket'
  /** A ticket's weight is not a positive integer (no stake or no reputation: not eligible). */
  | 'weight'
  /** A ticket's output is not 32 bytes. */
  | 'ticket'
  /** Fewer eligible tickets than seats. */
  | 'too-few'
  /** f is not a non-negative integer. */
  | 'size'
  /** A sortition window or its waves are not positive integers (ADR 0065). */
  | 'window'

/** A committee could not be drawn from these tickets. `details.reason` is a {@link SortitionReason}. */
export class SortitionError extends DigicapError {
  override name = 'SortitionError'
  readonly reason: SortitionReason
  constructor(
    reason: SortitionReason,
    shortMessage: string,
    options: Omit<DigicapErrorOptions, 'details'> & { details?: Record<string, unknown> } = {},
  ) {
    super('SORTITION', shortMessage, { ...options, details: { reason, ...options.details } })
    this.reason = reason
  }
}
