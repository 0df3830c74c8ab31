import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Stable codes of the errors this package throws. */
export type ContractsErrorCode =
  | 'CONTRACT_REVERT'
  | 'POLICY_EXPRESSION'
  | 'POLICY_COMPILE'
  | 'DEPLOYMENT'
  | 'ANVIL'
  | 'RPC_QUORUM'
  | 'TRANSACTION'

/**
 * A contract call reverted. `errorName`/`args` decode the custom error when its ABI is known
 * (every Digicap contract's errors are); `reason` is set for `AccessDenied`.
 */
export class ContractRevertError extends DigicapError {
  override name = 'ContractRevertError'
  /** Custom error name (e.g. `AccessDenied`), `Error` for a string revert, `Panic`, or undefined when unknown. */
  readonly errorName: string | undefined
  /** Decoded arguments of the custom error, in ABI order. */
  readonly args: readonly unknown[]
  /** The revert data as returned by the node (hex). */
  readonly data: string | undefined
  constructor(
    init: { errorName: string | undefined; args: readonly unknown[]; data: string | undefined },
    options: DigicapErrorOptions = {},
  ) {
    super(
      'CONTRACT_REVERT',
      init.errorName === undefined
        ? 'Contract call reverted'
        : `Contract reverted with ${init.errorName}`,
      options,
    )
    this.errorName = init.errorName
    this.args = init.args
    this.data = init.data
  }
}

/** A policy expression (text or object) is malformed; `details.position` points at the fault in text input. */
export class PolicyExpressionError extends DigicapError {
  override name = 'PolicyExpressionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('POLICY_EXPRESSION', shortMessage, options)
  }
}

/** solc rejected a policy source (details.errors lists the compiler's messages). */
export class PolicyCompileError extends DigicapError {
  override name = 'PolicyCompileError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('POLICY_COMPILE', shortMessage, options)
  }
}

/** Deploying or loading the Digicap contracts failed (bad addresses file, missing code, chain mismatch). */
export class DeploymentError extends DigicapError {
  override name = 'DeploymentError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('DEPLOYMENT', shortMessage, options)
  }
}

/** The local anvil test chain could not be found, started or reached. */
export class AnvilError extends DigicapError {
  override name = 'AnvilError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ANVIL', shortMessage, options)
  }
}

/**
 * Fewer than `quorum` RPCs returned the same answer: nothing is trusted. `details.operation`
 * names the read, `details.block` the pinned block (if any), `details.dissent` the RPCs that
 * answered otherwise or failed (`#<index> <host>`). Retryable: a lagging RPC catches up; a lying
 * or forked one must be replaced.
 */
export class QuorumError extends DigicapError {
  override name = 'QuorumError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RPC_QUORUM', shortMessage, options)
  }
}

/**
 * A transaction could not be sent or confirmed (the RPC refused it, e.g. a nonce or fee it
 * rejects, or no receipt came in time). A revert is a {@link ContractRevertError} instead.
 */
export class TransactionError extends DigicapError {
  override name = 'TransactionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TRANSACTION', shortMessage, options)
  }
}
