/**
 * Whose fault a failed fast-path audit is (docs/adr/0084). The key is out either way; what
 * differs is who the keyguard holds to account:
 *
 * - `executor`: the revert is about the executor's own request or registration
 *   (`SignedRequestExpired`, `JobParamsMismatch`, `NonceUsed`, `InvalidSignature`,
 *   `InvalidEphemeralKey`, `FeeTooLarge`, `ExecutorIsKeyguard`, `AccessDenied` with
 *   `EXECUTOR_NOT_REGISTERED`): the executor is cut off (`audit-failed`, ADR 0072), persisted.
 * - `capsule`: the owner removed or revoked the capsule since the keyguard's check
 *   (`AccessDenied` with `CAPSULE_NOT_FOUND` / `CAPSULE_REVOKED`): this audit can never land and
 *   no executor is to blame; an alert only.
 * - `operator`: everything else, `NotKeyguard` (the keyguard's account is not the capsule owner's
 *   approved operator), an operator account without ETH, and any revert this list does not
 *   name: no audit of this keyguard can be expected to land, so the whole fast path stops
 *   (fail closed for every executor) until an audit lands again or the keyguard restarts, and
 *   nobody is cut off.
 */
import { Reason } from '@digicap/contracts'

export type AuditBlame = 'executor' | 'capsule' | 'operator'

/** The AccessController's audit reverts that the executor's request or registration causes. */
const EXECUTOR_REVERTS = new Set([
  'SignedRequestExpired',
  'JobParamsMismatch',
  'NonceUsed',
  'InvalidSignature',
  'InvalidEphemeralKey',
  'FeeTooLarge',
  'ExecutorIsKeyguard',
])

/**
 * Whose fault `err` (from `recordFastPathGrant`) is, or undefined for a transient failure (RPC
 * down, timeouts: retried, nobody blamed).
 */
export function auditBlame(err: unknown): AuditBlame | undefined {
  const e = err as {
    errorName?: string
    args?: readonly unknown[]
    code?: string
    message?: string
  }
  if (e?.errorName === undefined) {
    const unfunded =
      e?.code === 'INSUFFICIENT_FUNDS' || /insufficient funds/i.test(String(e?.message ?? ''))
    return unfunded ? 'operator' : undefined
  }
  if (EXECUTOR_REVERTS.has(e.errorName)) return 'executor'
  if (e.errorName === 'AccessDenied') {
    const reason = Number(e.args?.[2] ?? -1)
    if (reason === Reason.EXECUTOR_NOT_REGISTERED) return 'executor'
    if (reason === Reason.CAPSULE_NOT_FOUND || reason === Reason.CAPSULE_REVOKED) return 'capsule'
  }
  return 'operator'
}
