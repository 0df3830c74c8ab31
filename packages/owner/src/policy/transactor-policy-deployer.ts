import {
  generatePolicySource,
  type KeyTransactor,
  POLICY_SOURCE_NAME,
  PolicyCompileError,
  parsePolicyExpression,
  policyCreationData,
} from '@digicap/contracts/light'
import type { SolcPolicyDeployerInit } from './solc-policy-deployer.ts'
import type { DeployedPolicyInfo, PolicyDeployer } from './types.ts'

/**
 * A {@link PolicyDeployer} that generates the policy's Solidity, compiles it (`init.compile`,
 * e.g. cached and in a child process; else solc in this process) and sends its creation from a
 * {@link KeyTransactor} (the owner's key over plain JSON-RPC): what `pi-node seal` deploys
 * with, loading no ethers. The expression is parsed before anything is compiled or sent.
 *
 * @example
 * ```ts
 * const policies = transactorPolicyDeployer(privateKeyTransactor({ rpcUrl, chainId, privateKey }), {
 *   nodeRegistry: contracts.nodeRegistry,
 * })
 * const { address } = await policies.deploy('maxRuns(3)')
 * ```
 */
export function transactorPolicyDeployer(
  transactor: KeyTransactor,
  init: SolcPolicyDeployerInit,
): PolicyDeployer {
  const serialize = init.serialize ?? ((fn) => fn())
  return {
    async deploy(expression): Promise<DeployedPolicyInfo> {
      const source = generatePolicySource(parsePolicyExpression(expression))
      const compiled = init.compile
        ? await init.compile(source)
        : (await import('@digicap/contracts/compiler')).compilePolicy(source)
      if (compiled.sources[POLICY_SOURCE_NAME] !== source) {
        throw new PolicyCompileError('The compiled policy is not of this source', {
          details: { contractName: compiled.contractName },
        })
      }
      const created = await serialize(() =>
        transactor.send({ data: policyCreationData(compiled.bytecode, init.nodeRegistry) }),
      )
      if (created.contractAddress === undefined) {
        throw new PolicyCompileError('The policy creation made no contract', {
          details: { transactionHash: created.hash },
        })
      }
      return {
        address: created.contractAddress,
        transactionHash: created.hash,
        source,
        contractName: compiled.contractName,
        solcVersion: compiled.solcVersion,
        settings: compiled.settings,
        metadata: JSON.parse(compiled.metadata),
      }
    },
  }
}
