import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/**
 * A request on the run socket was refused before any run (`details.reason`: `malformed`,
 * `too-large`, `version`, `token`, `busy`, `timeout`), or the daemon went away mid-run
 * (`closed`). The daemon keeps serving.
 */
export class RunSocketError extends DigicapError {
  override name = 'RunSocketError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUN_SOCKET', shortMessage, options)
  }
}
