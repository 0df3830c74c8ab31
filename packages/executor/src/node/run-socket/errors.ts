import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/**
 * A request on the run socket was refused before any run (`details.reason`: `malformed`,
 * `too-large`, `version`, `token`, `busy`, `timeout`, `stopping`), or the daemon went away
 * mid-run (`closed`); the daemon keeps serving. Starting the socket: `in-use` (another daemon
 * holds the data folder) or `path-too-long` (the socket's path exceeds 107 bytes).
 */
export class RunSocketError extends DigicapError {
  override name = 'RunSocketError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUN_SOCKET', shortMessage, options)
  }
}
