/** Typed errors of pi-node; each has a stable code printed as `error[CODE]`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  NotInitialisedError,
  UsageError,
} from '@digicap/cli-kit'
export { InputFileError, RuntimeUnsupportedError } from '@digicap/owner'

/** `serve` while another `serve` holds the pid file. */
export class DaemonRunningError extends DigicapError {
  override name = 'DaemonRunningError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('DAEMON_RUNNING', shortMessage, options)
  }
}
