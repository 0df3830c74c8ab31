/**
 * Typed errors of TPM access. Every class has a stable `code`; messages and details carry
 * handles, response codes, lengths and exit codes, never key material. `@digicap/keyguard`
 * re-exports the four classes it has always thrown, so `instanceof` works across both.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/**
 * tpm2-tools are not installed, or the TPM does not answer (TCTI cannot connect, device
 * missing, command timed out). `details.reason` says which.
 */
export class TpmUnavailableError extends DigicapError {
  override name = 'TpmUnavailableError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_UNAVAILABLE', shortMessage, options)
  }
}

/** The TPM is busy, out of object/session memory, retrying, or in dictionary-attack lockout. */
export class TpmBusyError extends DigicapError {
  override name = 'TpmBusyError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_BUSY', shortMessage, options)
  }
}

/** The persistent handle is empty, out of range, or holds a key of the wrong kind. */
export class TpmHandleError extends DigicapError {
  override name = 'TpmHandleError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_HANDLE', shortMessage, options)
  }
}

/** A TPM command failed for a reason none of the other TPM errors describes. */
export class TpmCommandError extends DigicapError {
  override name = 'TpmCommandError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_COMMAND', shortMessage, options)
  }
}

/**
 * The TPM is in dictionary-attack lockout (`TPM_RC_LOCKOUT`): it refuses every use of a key
 * without `noDA`, such as an AK, until the lockout ends. A `TpmBusyError` (code `TPM_BUSY`,
 * `details.reason: 'lockout'`) so callers that back off on busy keep working; its own class so
 * an agent can say what happened. Several unclean shutdowns count as failed tries on a TPM.
 * Recover: wait `recoveryTime` seconds (`tpm2_getcap properties-variable`: TPM2_PT_LOCKOUT_*),
 * or clear it with the lockout authorization: `tpm2_dictionarylockout --clear-lockout`.
 */
export class TpmLockoutError extends TpmBusyError {
  override name = 'TpmLockoutError'
}

/** The hint a lockout error carries (also the README's recovery text). */
export const LOCKOUT_HINT =
  'The TPM is in dictionary-attack lockout: wait for its recovery time, or clear it with the lockout authorization (tpm2_dictionarylockout --clear-lockout).'

/**
 * An encrypted session could not be trusted: the key at the salt handle is not the key the
 * node pinned (`reason: 'key-substituted'`), the TPM could not decrypt the session salt
 * (`'salt-refused'`: another key sits at the handle, or something on the bus swapped it), or a
 * response's HMAC does not verify (`'response-hmac'`: the response was altered or does not
 * come from the TPM that holds the salt key). Nothing a session protects is returned then.
 */
export class TpmSessionError extends DigicapError {
  override name = 'TpmSessionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_SESSION', shortMessage, options)
  }
}

/**
 * A policy-bound key refused: the PCRs are not the values the owner authorized
 * (`reason: 'pcr-mismatch'`, `details.pcrs` lists the PCRs that differ), or the signed
 * approval does not verify (`'approval-invalid'`). The TPM enforces it; this error says why.
 */
export class TpmPolicyError extends DigicapError {
  override name = 'TpmPolicyError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_POLICY', shortMessage, options)
  }
}
