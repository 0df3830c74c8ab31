/** Typed errors of executor-node: the ones every Digicap CLI shares (each prints `error[CODE]`). */
export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  InsufficientFundsError,
  NotInitialisedError,
  UsageError,
} from '@digicap/cli-kit'
