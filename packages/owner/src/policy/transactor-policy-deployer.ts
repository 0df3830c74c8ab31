import {
  createAddress,
  jsonRpcQuorum,
  type KeyTransactor,
  policyCreationData,
} from '@digicap/contracts/light'
import { awaitPolicyCode, compilePolicyExpression, expectedPolicyCode } from './policy-code.ts'
import type { SolcPolicyDeployerInit } from './solc-policy-deployer.ts'
import type { DeployedPolicyInfo, PolicyDeployer } from './types.ts'

/**
 * As {@link SolcPolicyDeployerInit}; `rpcUrls` (the RPCs the created policy's code is read
 * from before the header names it, e.g. the keyguard's `rpcUrl` and `rpcUrls`) defaults to the
 * transactor's RPC: the code is always checked.
 */
export type TransactorPolicyDeployerInit = SolcPolicyDeployerInit

/**
 * A {@link PolicyDeployer} that generates the policy's Solidity, compiles it (`init.compile`,
 * e.g. cached and in a child process; else solc in this process) and sends its creation from a
 * {@link KeyTransactor} (the owner's key over plain JSON-RPC): what `pi-node seal` deploys
 * with, loading no ethers. The expression is parsed before anything is compiled or sent.
 *
 * The policy's address is computed from the owner's address and the nonce it signed (never
 * taken from the receipt), and it is returned only once a quorum of `init.rpcUrls` reads
 * there the code this expression compiles to (with its `nodeRegistry`): a lying RPC can name
 * neither another contract (a receipt) nor an older one of the owner's (a nonce).
 *
 * @throws {PolicyCodeError} when the code at the computed address is not the policy's.
 * @example
 * ```ts
 * const policies = transactorPolicyDeployer(privateKeyTransactor({ rpcUrl, chainId, privateKey }), {
 *   nodeRegistry: contracts.nodeRegistry,
 *   rpcUrls: [rpcUrl, ...moreRpcUrls],
 * })
 * const { address } = await policies.deploy('maxRuns(3)')
 * ```
 */
export function transactorPolicyDeployer(
  transactor: KeyTransactor,
  init: TransactorPolicyDeployerInit,
): PolicyDeployer {
  const serialize = init.serialize ?? ((fn) => fn())
  const rpcUrls = init.rpcUrls ?? (transactor.rpcUrl === undefined ? [] : [transactor.rpcUrl])
  // Checked when built: a quorum that cannot be met fails before anything is compiled or sent.
  const rpcs = jsonRpcQuorum({
    rpcUrls,
    ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
  })
  return {
    async deploy(expression): Promise<DeployedPolicyInfo> {
      const { source, compiled } = await compilePolicyExpression(expression, init.compile)
      const expected = expectedPolicyCode(compiled, init.nodeRegistry)
      const created = await serialize(() =>
        transactor.send({ data: policyCreationData(compiled.bytecode, init.nodeRegistry) }),
      )
      const address = createAddress(transactor.address, created.nonce)
      await awaitPolicyCode(rpcs, address, expected, init.codeTimeoutMs ?? 60_000)
      return {
        address,
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
