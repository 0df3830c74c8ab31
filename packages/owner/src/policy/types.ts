import type { CompiledPolicy } from '@digicap/contracts/light'

/** What turns a policy expression into a deployed policy contract. */

/** A deployed policy contract and what it takes to check its bytecode again. */
export interface DeployedPolicyInfo {
  address: `0x${string}`
  transactionHash: string
  /** The generated Solidity source. */
  source: string
  contractName: string
  solcVersion: string
  /** The compiler settings and metadata JSON (to re-compile and compare). */
  settings: unknown
  metadata: unknown
}

export interface PolicyDeployer {
  /**
   * Compiles and deploys the policy of `expression` (e.g. `all(minReputation(50), maxRuns(3))`).
   * @throws {PolicyExpressionError} for an expression that does not parse.
   */
  deploy(expression: string): Promise<DeployedPolicyInfo>
}

/**
 * Runs `fn`, which sends transactions from the owner account, one at a time across
 * processes (e.g. under a file lock): two pipelines at once would read the same nonce.
 */
export type TransactionSerializer = <T>(fn: () => Promise<T>) => Promise<T>

/** Compiles a generated policy source (in process, in a child process, from a cache...). */
export type PolicyCompiler = (source: string) => Promise<CompiledPolicy>
