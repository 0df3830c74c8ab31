import { deployPolicy } from '@digicap/contracts/compiler'
import { jsonRpcQuorum } from '@digicap/contracts/light'
import type { Signer } from 'ethers'
import { awaitPolicyCode, compilePolicyExpression, expectedPolicyCode } from './policy-code.ts'
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
  /**
   * The RPCs the created policy's code is read from before it is returned (the SDK's seal: its
   * `rpcUrl` and `rpcUrls`). A quorum of them must read there the code the expression compiles
   * to (`PolicyCodeError` otherwise, ADR 0091): the signer's one RPC cannot name an older
   * contract of the owner's by lying about the nonce. Default: no check (the signer's RPC is
   * trusted, as ethers does: any code at the address).
   */
  rpcUrls?: readonly string[]
  /** How many of `rpcUrls` must agree on the code. Default: 1 for one RPC, else a majority. */
  quorum?: number
  /** How long to wait for a quorum to see the code, ms. Default 60 000. */
  codeTimeoutMs?: number
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
  // Checked when built: a quorum that cannot be met fails before anything is compiled or sent.
  const rpcs =
    init.rpcUrls === undefined
      ? undefined
      : jsonRpcQuorum({
          rpcUrls: init.rpcUrls,
          ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
        })
  return {
    async deploy(expression): Promise<DeployedPolicyInfo> {
      const { source, compiled } = await compilePolicyExpression(expression, init.compile)
      const policy = await serialize(() =>
        deployPolicy(signer, { source }, { nodeRegistry: init.nodeRegistry, compiled }),
      )
      // ethers computed the address from the nonce it signed and saw "some code" there through
      // its one RPC; the quorum must see this expression's code (ADR 0091).
      if (rpcs !== undefined) {
        const expected = expectedPolicyCode(compiled, init.nodeRegistry)
        await awaitPolicyCode(rpcs, policy.address, expected, init.codeTimeoutMs ?? 60_000)
      }
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
