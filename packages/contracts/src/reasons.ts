/**
 * Reason codes returned by policies and carried by `AccessDenied` (mirrors contracts/policy/Reason.sol,
 * plus the AccessController's own `REASON_*` constants, kept out of Reason.sol so that policy
 * sources, and the metadata of policies already deployed, do not change).
 * A code never changes meaning once published; 128-255 are free for custom policies.
 */
export const Reason = {
  OK: 0,
  CAPSULE_NOT_FOUND: 1,
  CAPSULE_REVOKED: 2,
  EXECUTOR_NOT_REGISTERED: 3,
  POLICY_ERROR: 4,
  INSUFFICIENT_DEPOSIT: 5,
  EXECUTOR_LEAVING: 6,
  /** Fast path only: the executor owns or operates the capsule (AccessController, not Reason.sol). */
  EXECUTOR_IS_KEYGUARD: 7,
  REPUTATION_TOO_LOW: 10,
  NOT_ALLOWLISTED: 11,
  DENYLISTED: 12,
  WRONG_ENVIRONMENT: 13,
  TOO_EARLY: 14,
  TOO_LATE: 15,
  MAX_RUNS_REACHED: 16,
  FEE_TOO_LOW: 17,
  NEGATED_CONDITION_MET: 18,
  DENIED: 19,
  NOT_ATTESTED: 20,
} as const

export type ReasonName = keyof typeof Reason
export type ReasonCode = (typeof Reason)[ReasonName]

/** The name of a reason code: `CUSTOM_<n>` for 128-255, `UNKNOWN_<n>` for unassigned codes. */
export function reasonName(code: number | bigint): string {
  const n = Number(code)
  for (const [name, value] of Object.entries(Reason)) if (value === n) return name
  return n >= 128 && n <= 255 ? `CUSTOM_${n}` : `UNKNOWN_${n}`
}
