import { generatePolicySource, parsePolicyExpression } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import type { Signer } from 'ethers'
import type {
  DeployedPolicyInfo,
  PolicyCompiler,
  PolicyDeployer,
  TransactionSerializer,
} from './types.ts'

export interface SolcPolicyDeployerInit {
  /** The `NodeRegistry` every generated policy reads reputation and registration from. */
  nodeRegistry: string
  /** Serializes the owner's transactions. Default: none. */
  serialize?: TransactionSerializer
  /**
   * Compiles the generated source, before the transaction lock is taken. Default: solc in this
   * process; `childProcessPolicyCompiler()` keeps solc's memory out of it.
   */
  compile?: PolicyCompiler
}

/**
 * A {@link PolicyDeployer} that generates the policy's Solidity, compiles it with solc (the
 * npm package, no download) and deploys it from an ethers signer (the owner's account).
 * The expression is parsed before anything is compiled or sent.
 *
 * @example
 * ```ts
 * const policies = solcPolicyDeployer(ownerWallet, { nodeRegistry: contracts.nodeRegistry })
 * const { address } = await policies.deploy('maxRuns(3)')
 * ```
 */
export function solcPolicyDeployer(signer: Signer, init: SolcPolicyDeployerInit): PolicyDeployer {
  const serialize = init.serialize ?? ((fn) => fn())
  return {
    async deploy(expression): Promise<DeployedPolicyInfo> {
      const rule = parsePolicyExpression(expression)
      const source = generatePolicySource(rule)
      const compiled = init.compile ? await init.compile(source) : undefined
      const policy = await serialize(() =>
        deployPolicy(
          signer,
          { source },
          { nodeRegistry: init.nodeRegistry, ...(compiled ? { compiled } : {}) },
        ),
      )
      return {
        address: policy.address as `0x${string}`,
        transactionHash: policy.transactionHash,
        source: policy.source,
        contractName: policy.compiled.contractName,
        solcVersion: policy.compiled.solcVersion,
        settings: policy.compiled.settings,
        metadata: JSON.parse(policy.compiled.metadata),
      }
    },
  }
}
