/** The typed errors every Digicap CLI shares; each has a stable code printed as `error[CODE]`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/** A bad command line (exit code 2). */
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

/** `init` on a folder that already holds a node (without --force). */
export class AlreadyInitialisedError extends DigicapError {
  override name = 'AlreadyInitialisedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ALREADY_INITIALISED', shortMessage, options)
  }
}

/** The config (or identity) file is unreadable or malformed, or an override has a bad value. */
export class ConfigError extends DigicapError {
  override name = 'ConfigError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CONFIG', shortMessage, options)
  }
}

/** The chain RPC does not answer, or answers for another chain. */
export class ChainUnreachableError extends DigicapError {
  override name = 'ChainUnreachableError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CHAIN_UNREACHABLE', shortMessage, options)
  }
}

/** A lock another process holds (e.g. the owner account's transactions) was not freed in time. */
export class LockTimeoutError extends DigicapError {
  override name = 'LockTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('LOCK_TIMEOUT', shortMessage, options)
  }
}

/** The node's account cannot pay for what the command sends (stake, fee) plus gas. */
export class InsufficientFundsError extends DigicapError {
  override name = 'InsufficientFundsError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INSUFFICIENT_FUNDS', shortMessage, options)
  }
}
