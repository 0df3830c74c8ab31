/** Typed errors of pi-node; each has a stable code printed as `error[CODE]`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Bad command line: unknown flag, missing argument, bad value. Exit code 2. */
export class UsageError extends DigicapError {
  override name = 'UsageError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('USAGE', shortMessage, options)
  }
}

/** No node in this data folder yet. */
export class NotInitialisedError extends DigicapError {
  override name = 'NotInitialisedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('NOT_INITIALISED', shortMessage, options)
  }
}

/** `init` on a data folder that already holds a node. */
export class AlreadyInitialisedError extends DigicapError {
  override name = 'AlreadyInitialisedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ALREADY_INITIALISED', shortMessage, options)
  }
}

/** The config file is unreadable or malformed, or an override has a bad value. */
export class ConfigError extends DigicapError {
  override name = 'ConfigError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CONFIG', shortMessage, options)
  }
}

/** The chain does not answer, or answers with another chain id. */
export class ChainUnreachableError extends DigicapError {
  override name = 'ChainUnreachableError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CHAIN_UNREACHABLE', shortMessage, options)
  }
}

/** A capsule runtime pi-node cannot seal for (known: data, quickjs, wasi). */
export class RuntimeUnsupportedError extends DigicapError {
  override name = 'RuntimeUnsupportedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUNTIME_UNSUPPORTED', shortMessage, options)
  }
}

/** `serve` while another `serve` holds the pid file. */
export class DaemonRunningError extends DigicapError {
  override name = 'DaemonRunningError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('DAEMON_RUNNING', shortMessage, options)
  }
}

/** The file to seal is missing, unreadable or not a regular file. */
export class InputFileError extends DigicapError {
  override name = 'InputFileError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INPUT_FILE', shortMessage, options)
  }
}
