/** Typed errors of the owner pipeline; each has a stable code printed as `error[CODE]`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** The file (or code) to seal is missing, unreadable or not a regular file. */
export class InputFileError extends DigicapError {
  override name = 'InputFileError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INPUT_FILE', shortMessage, options)
  }
}

/** A capsule runtime the pipeline cannot seal for (known: data, quickjs, wasi). */
export class RuntimeUnsupportedError extends DigicapError {
  override name = 'RuntimeUnsupportedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUNTIME_UNSUPPORTED', shortMessage, options)
  }
}

/** A capsule registered to this keyguard cannot be adopted: its header disagrees with the chain, has no copy for this keyguard, or the copy is not the committed key. */
export class CapsuleAdoptionError extends DigicapError {
  override name = 'CapsuleAdoptionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_ADOPTION', shortMessage, options)
  }
}

/** A node operation that needs the data folder to itself while the daemon (`serve`) runs on it. */
export class DaemonRunningError extends DigicapError {
  override name = 'DaemonRunningError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('DAEMON_RUNNING', shortMessage, options)
  }
}

/**
 * The contract at the address the owner's policy creation made is not the policy compiled for
 * the expression (another contract, none yet, or the RPCs disagree): the header is not signed.
 */
export class PolicyCodeError extends DigicapError {
  override name = 'PolicyCodeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('POLICY_CODE', shortMessage, options)
  }
}
