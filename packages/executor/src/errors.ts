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
  | 'BUNDLE_FORMAT'

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

/** The bytes are not a well-formed, canonical code+data bundle (see docs/bundle.md). */
export class BundleFormatError extends DigicapError {
  override name = 'BundleFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('BUNDLE_FORMAT', shortMessage, options)
  }
}

const MAX_PROGRAM_MESSAGE = 300
/** C0/C1 controls, line/paragraph separators and bidi overrides: none may reach a log or terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** Make untrusted program text safe to put in an error: printable, one line, bounded. */
export function sanitizeProgramText(text: string, max = MAX_PROGRAM_MESSAGE): string {
  const clean = text.replace(UNSAFE_CHARS, ' ')
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}
