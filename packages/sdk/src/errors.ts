/**
 * Typed errors of the SDK's own checks. Everything else a call can throw is the typed error
 * of the package doing the work (`@digicap/executor`, `@digicap/protocol`, …), passed through.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

export type SdkErrorCode =
  | 'NETWORK_UNKNOWN'
  | 'NETWORK_INVALID'
  | 'CHAIN_MISMATCH'
  | 'CHAIN_READ'
  | 'SIGNER_UNSUPPORTED'
  | 'RESULT_TIMEOUT'

/** No network of that name: neither shipped with `@digicap/contracts` nor registered. */
export class NetworkUnknownError extends DigicapError {
  override name = 'NetworkUnknownError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('NETWORK_UNKNOWN', shortMessage, options)
  }
}

/** A network description is malformed (chain id, URL, addresses). `details.field` names it. */
export class NetworkInvalidError extends DigicapError {
  override name = 'NetworkInvalidError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('NETWORK_INVALID', shortMessage, options)
  }
}

/** The RPC serves another chain than the network names. */
export class ChainMismatchError extends DigicapError {
  override name = 'ChainMismatchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CHAIN_MISMATCH', shortMessage, options)
  }
}

/** A read from the chain failed (RPC unreachable, malformed answer, unexpected revert): capsule-core's. */
export { ChainReadError } from '@digicap/capsule-core'

/** The signer cannot do what this call needs: it has no `signTransaction` and the call sends a transaction. */
export class SignerUnsupportedError extends DigicapError {
  override name = 'SignerUnsupportedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SIGNER_UNSUPPORTED', shortMessage, options)
  }
}

/** No result (of the run asked for) arrived in time. */
export class ResultTimeoutError extends DigicapError {
  override name = 'ResultTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RESULT_TIMEOUT', shortMessage, options)
  }
}
