/** Typed errors of pi-node; each has a stable code printed as `error[CODE]`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  NotInitialisedError,
  UsageError,
} from '@digicap/cli-kit'

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
