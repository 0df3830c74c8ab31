/** A compiled policy's shape and its source unit name: no solc, no ethers (the seal reads cached ones). */
import type { COMPILER_SETTINGS, CompiledContract } from './solc.ts'

/** Source unit name a policy is compiled under. */
export const POLICY_SOURCE_NAME = 'DigicapPolicy.sol'

export interface CompiledPolicy {
  readonly contractName: string
  readonly abi: readonly Record<string, unknown>[]
  /** Creation bytecode (constructor arguments not included). */
  readonly bytecode: `0x${string}`
  /** Runtime bytecode (immutables are zero here; the chain fills them in at deployment). */
  readonly deployedBytecode: `0x${string}`
  /** solc's metadata JSON: compiler version, settings and the keccak256 of every source. */
  readonly metadata: string
  /** Byte ranges of immutables in `deployedBytecode`. */
  readonly immutableReferences: CompiledContract['immutableReferences']
  readonly solcVersion: string
  readonly settings: typeof COMPILER_SETTINGS
  /** Every source the policy was compiled from, by source unit name (the policy and the Digicap interfaces). */
  readonly sources: Readonly<Record<string, string>>
}
