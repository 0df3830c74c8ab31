import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/**
 * Stable codes of the errors this package throws. A code never changes meaning once
 * published; `details` carries the non-secret facts (limits, sizes, exit codes).
 */
export type ExecutorErrorCode =
  | 'SANDBOX_TIMEOUT'
  | 'SANDBOX_MEMORY'
  | 'SANDBOX_CRASH'
  | 'SANDBOX_OUTPUT_LIMIT'
  | 'SANDBOX_RUNTIME_UNSUPPORTED'
  | 'SANDBOX_ABORTED'
  | 'SANDBOX_LIFECYCLE'
  | 'OCI_STATE_DIR'
  | 'BUNDLE_FORMAT'
  | 'CAPSULE_FETCH'
  | 'CAPSULE_UNVERIFIED'
  | 'REGISTRY_MISMATCH'
  | 'ACCESS_DENIED'
  | 'ACCESS_REFUSED'
  | 'ACCESS_UNAVAILABLE'
  | 'KEY_RELEASE_TIMEOUT'
  | 'KEY_RELEASE_INVALID'
  | 'PAYLOAD_INTEGRITY'
  | 'RESULT_DELIVERY'
  | 'RESULT_INVALID'
  | 'RESULT_REFUSED'
  | 'EXECUTOR_STATE'
  | 'RUN_PCR_NOT_RESET'
  | 'RUN_QUEUE_FULL'
  | 'RUN_SOCKET'

/** The program ran past its time limit and was stopped (by the VM's interrupt or by the host). */
export class SandboxTimeoutError extends DigicapError {
  override name = 'SandboxTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_TIMEOUT', shortMessage, {
      hint: 'Raise runtime.timeLimitMs or make the program do less work.',
      ...options,
    })
  }
}

/** The program hit its memory limit (heap, linear memory or stack) and was stopped. */
export class SandboxMemoryError extends DigicapError {
  override name = 'SandboxMemoryError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_MEMORY', shortMessage, {
      hint: 'Raise runtime.memoryLimitBytes or make the program use less memory.',
      ...options,
    })
  }
}

/**
 * The program failed on its own: it threw, trapped, or exited with a non-zero status. The
 * program's message is in `details.programMessage`, stripped of control characters and
 * truncated; it is untrusted text.
 */
export class SandboxCrashError extends DigicapError {
  override name = 'SandboxCrashError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_CRASH', shortMessage, options)
  }
}

/** The program wrote more output (or, for WASI, more bytes to its scratch files) than allowed. */
export class SandboxOutputLimitError extends DigicapError {
  override name = 'SandboxOutputLimitError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_OUTPUT_LIMIT', shortMessage, options)
  }
}

/** No sandbox for this runtime kind, or the code is not something the runtime can load. */
export class SandboxRuntimeUnsupportedError extends DigicapError {
  override name = 'SandboxRuntimeUnsupportedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_RUNTIME_UNSUPPORTED', shortMessage, options)
  }
}

/** The caller's AbortSignal fired; the sandbox was torn down. */
export class SandboxAbortedError extends DigicapError {
  override name = 'SandboxAbortedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_ABORTED', shortMessage, options)
  }
}

/** A lifecycle listener (e.g. the attestation agent extending a PCR) failed; the run was not started or its clean-up report could not be delivered. */
export class SandboxLifecycleError extends DigicapError {
  override name = 'SandboxLifecycleError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SANDBOX_LIFECYCLE', shortMessage, options)
  }
}

/**
 * The OCI state directory of image runs (or a run directory in it) is not a place only this
 * uid controls: a symbolic link, not a directory, owned by another user, writable by group or
 * others, or under a folder another user may rename entries in (ADR 0075). Nothing was run or
 * written there. `details`: `path`, `reason`, and `uid` / `mode` when they are the reason.
 */
export class OciStateDirError extends DigicapError {
  override name = 'OciStateDirError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_STATE_DIR', shortMessage, options)
  }
}

/** The bundle format is capsule-core's, and so is its error (re-exported under the same name). */
export { BundleFormatError } from '@digicap/capsule-core'

const MAX_PROGRAM_MESSAGE = 300
/** C0/C1 controls, line/paragraph separators and bidi overrides: none may reach a log or terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** Make untrusted program text safe to put in an error: printable, one line, bounded. */
export function sanitizeProgramText(text: string, max = MAX_PROGRAM_MESSAGE): string {
  const clean = text.replace(UNSAFE_CHARS, ' ')
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}

/** The capsule could not be fetched (bad CID, not found, aborted) or is not a capsule at all. */
export class CapsuleFetchError extends DigicapError {
  override name = 'CapsuleFetchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_FETCH', shortMessage, options)
  }
}

/**
 * No byte of the capsule arrived for the fetch timeout: no connected peer provides the CID
 * (e.g. the owner's pi-node is down or unreachable). Details: `cid`, `timeoutMs`, `bytes`,
 * `peersAsked`.
 */
export class CapsuleFetchTimeoutError extends DigicapError {
  override name = 'CapsuleFetchTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_FETCH_TIMEOUT', shortMessage, options)
  }
}

/** The header's EIP-712 signature is malformed or not the owner's: refused before any access request. */
export class CapsuleUnverifiedError extends DigicapError {
  override name = 'CapsuleUnverifiedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_UNVERIFIED', shortMessage, options)
  }
}

/**
 * The chain does not list this capsule with this CID, owner, policy and commitment (or it is
 * revoked, or the header names another chain or registry). `details.field` says which.
 */
export class RegistryMismatchError extends DigicapError {
  override name = 'RegistryMismatchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('REGISTRY_MISMATCH', shortMessage, options)
  }
}

/**
 * The policy said no — on chain (`AccessDenied` revert) or at the keyguard's fast path
 * (`policy-denied`). `reason` is the contract's reason name, e.g. `MAX_RUNS_REACHED`.
 */
export class AccessDeniedError extends DigicapError {
  override name = 'AccessDeniedError'
  readonly reason: string
  readonly path: 'fast' | 'chain'
  constructor(reason: string, path: 'fast' | 'chain', options: DigicapErrorOptions = {}) {
    super('ACCESS_DENIED', `Access denied by the capsule's policy: ${reason}`, {
      ...options,
      details: { reason, path, ...(options.details ?? {}) },
    })
    this.reason = reason
    this.path = path
  }
}

/**
 * The keyguard refused a fast-path request for a reason other than the policy
 * (`replayed`, `expired`, `bad-signature`, `rate-limited`, `busy`, `unknown-capsule`).
 */
export class AccessRefusedError extends DigicapError {
  override name = 'AccessRefusedError'
  readonly reasonCode: string
  constructor(reasonCode: string, options: DigicapErrorOptions = {}) {
    super('ACCESS_REFUSED', `The keyguard refused the request: ${reasonCode}`, {
      ...options,
      details: { reasonCode, ...(options.details ?? {}) },
    })
    this.reasonCode = reasonCode
  }
}

/** The keyguard could not be reached (and no fallback was allowed or it failed too). */
export class AccessUnavailableError extends DigicapError {
  override name = 'AccessUnavailableError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ACCESS_UNAVAILABLE', shortMessage, options)
  }
}

/** A grant was made but no key release arrived before the grant expired. */
export class KeyReleaseTimeoutError extends DigicapError {
  override name = 'KeyReleaseTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('KEY_RELEASE_TIMEOUT', shortMessage, options)
  }
}

/** A key release could not be opened, or its key is not this capsule's key (key commitment). */
export class KeyReleaseInvalidError extends DigicapError {
  override name = 'KeyReleaseInvalidError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('KEY_RELEASE_INVALID', shortMessage, options)
  }
}

/** The payload failed authentication or its plaintext commitment after decryption. */
export class PayloadIntegrityError extends DigicapError {
  override name = 'PayloadIntegrityError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('PAYLOAD_INTEGRITY', shortMessage, options)
  }
}

/** A result could not be delivered at all (neither directly nor stored for later). */
export class ResultDeliveryError extends DigicapError {
  override name = 'ResultDeliveryError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RESULT_DELIVERY', shortMessage, options)
  }
}

/** `runCapsule` before `start()` or after `stop()`. */
export class ExecutorStateError extends DigicapError {
  override name = 'ExecutorStateError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('EXECUTOR_STATE', shortMessage, options)
  }
}

/**
 * The TPM's run PCR (23) is not at its reset value when a measured run wants to start: a
 * previous run did not finish its clean-up (killed mid-way, TPM failure) or something else
 * extended it. No run starts on this TPM until an operator resets PCR 23, because a quote now
 * would not show a clean "before" state.
 */
export class RunPcrNotResetError extends DigicapError {
  override name = 'RunPcrNotResetError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUN_PCR_NOT_RESET', shortMessage, {
      hint: "Check why the last run did not clean up, then reset PCR 23 (the agent's resetRunPcr, or tpm2_pcrreset 23).",
      ...options,
    })
  }
}

/**
 * Measured runs share one PCR 23, so they take turns; this many runs are already waiting for
 * theirs. `details.waiting` and `details.maxWaiting` say how many; retry later.
 */
export class RunQueueFullError extends DigicapError {
  override name = 'RunQueueFullError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUN_QUEUE_FULL', shortMessage, { hint: 'Retry when a run has finished.', ...options })
  }
}
