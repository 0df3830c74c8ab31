import { hexToBytes, toHex } from '@digicap/capsule-core'
import {
  type CompiledPolicy,
  createAddress,
  generatePolicySource,
  type JsonRpcQuorum,
  jsonRpcQuorum,
  type KeyTransactor,
  POLICY_SOURCE_NAME,
  PolicyCompileError,
  parsePolicyExpression,
  policyCreationData,
} from '@digicap/contracts/light'
import { PolicyCodeError } from '../errors.ts'
import type { SolcPolicyDeployerInit } from './solc-policy-deployer.ts'
import type { DeployedPolicyInfo, PolicyDeployer } from './types.ts'

export interface TransactorPolicyDeployerInit extends SolcPolicyDeployerInit {
  /**
   * The RPCs the created policy's code is read from, before the header names it (e.g. the
   * keyguard's: `rpcUrl` and `rpcUrls` of the node's config). Default: the transactor's RPC.
   */
  rpcUrls?: readonly string[]
  /** How many of `rpcUrls` must agree on the code. Default: 1 for one RPC, else a majority. */
  quorum?: number
  /** How long to wait for a quorum to see the code, ms. Default 60 000. */
  codeTimeoutMs?: number
}

/**
 * The runtime code `compiled` has once created with `nodeRegistry`: its runtime bytecode with
 * each immutable slot (the policy's only immutable is `nodeRegistry`) holding that address.
 */
export function expectedPolicyCode(compiled: CompiledPolicy, nodeRegistry: string): string {
  const code = hexToBytes(compiled.deployedBytecode)
  const word = new Uint8Array(32)
  word.set(hexToBytes(nodeRegistry, { length: 20, name: 'nodeRegistry' }), 12)
  for (const { start, length } of compiled.immutableReferences) {
    if (length !== 32 || start + 32 > code.length) {
      throw new PolicyCompileError('The compiled policy has an immutable it cannot fill', {
        details: { start, length },
      })
    }
    code.set(word, start)
  }
  return toHex(code)
}

/**
 * Waits until a quorum of `rpcs` reads `expected` at `address`. An empty answer is "not yet"
 * (an RPC lagging behind the receipt); any other code is refused at once.
 * @throws {PolicyCodeError}
 */
async function awaitPolicyCode(
  rpcs: JsonRpcQuorum,
  address: string,
  expected: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last: unknown
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      const code = await rpcs.call('eth_getCode', [address.toLowerCase(), 'latest'])
      if (typeof code === 'string' && code.toLowerCase() === expected.toLowerCase()) return
      if (code !== '0x') {
        throw new PolicyCodeError('The contract the policy creation made is not this policy', {
          details: { address, bytes: typeof code === 'string' ? (code.length - 2) / 2 : 0 },
          hint: 'An RPC may lie about the nonce or the chain: check the RPCs in the config; nothing was signed.',
        })
      }
      last = undefined
    } catch (err) {
      if (err instanceof PolicyCodeError) throw err
      last = err
    }
    if (performance.now() > deadline) {
      throw new PolicyCodeError('No quorum of RPCs shows the created policy', {
        cause: last,
        details: { address, rpcs: rpcs.names, quorum: rpcs.quorum, timeoutMs },
        hint: 'Its creation may not be on chain (an RPC lied about it, or it was dropped): nothing was signed; seal again.',
      })
    }
    await new Promise((r) => setTimeout(r, wait))
  }
}

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
      const source = generatePolicySource(parsePolicyExpression(expression))
      const compiled = init.compile
        ? await init.compile(source)
        : (await import('@digicap/contracts/compiler')).compilePolicy(source)
      if (compiled.sources[POLICY_SOURCE_NAME] !== source) {
        throw new PolicyCompileError('The compiled policy is not of this source', {
          details: { contractName: compiled.contractName },
        })
      }
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
