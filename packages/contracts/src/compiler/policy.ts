import {
  ContractFactory,
  type ContractRunner,
  getBytes,
  hexlify,
  type Provider,
  type Signer,
} from 'ethers'
import { PolicyCompileError } from '../errors.ts'
import { policyLibrarySources } from '../generated/artifacts.ts'
import type { PolicyExpression } from '../policy/expression.ts'
import { GENERATED_POLICY_CONTRACT, generatePolicySource } from '../policy/solidity.ts'
import { type CompiledPolicy, POLICY_SOURCE_NAME } from './compiled-policy.ts'
import { COMPILER_SETTINGS, compileSolidity, SOLC_VERSION } from './solc.ts'

export { type CompiledPolicy, POLICY_SOURCE_NAME } from './compiled-policy.ts'

export interface CompilePolicyOptions {
  /** Contract to pick from the source (default `DigicapPolicy`). */
  contractName?: string
  /** Extra sources the policy imports, by source unit name. */
  extraSources?: Readonly<Record<string, string>>
}

/**
 * Compiles a policy (generated or your own) with the pinned solc, in process. The source may
 * import `@digicap/contracts/policy/IAccessPolicy.sol`, `.../policy/Reason.sol` and
 * `@digicap/contracts/interfaces/INodeRegistry.sol`.
 *
 * @throws {PolicyCompileError} on compiler errors or warnings, or when the contract is absent.
 */
export function compilePolicy(source: string, options: CompilePolicyOptions = {}): CompiledPolicy {
  const contractName = options.contractName ?? GENERATED_POLICY_CONTRACT
  const sources = { ...policyLibrarySources, ...options.extraSources, [POLICY_SOURCE_NAME]: source }
  const output = compileSolidity(sources)
  const c = output[POLICY_SOURCE_NAME]?.[contractName]
  if (!c)
    throw new PolicyCompileError('The source has no such contract', {
      details: { contractName, found: Object.keys(output[POLICY_SOURCE_NAME] ?? {}) },
    })
  if (
    !(c.abi as { type?: string; name?: string }[]).some(
      (i) => i.type === 'function' && i.name === 'evaluate',
    )
  )
    throw new PolicyCompileError('The contract does not implement IAccessPolicy.evaluate', {
      details: { contractName },
    })
  return {
    contractName,
    abi: c.abi,
    bytecode: c.bytecode,
    deployedBytecode: c.deployedBytecode,
    metadata: c.metadata,
    immutableReferences: c.immutableReferences,
    solcVersion: SOLC_VERSION,
    settings: COMPILER_SETTINGS,
    sources,
  }
}

export interface DeployPolicyOptions {
  /** NodeRegistry address the policy reads reputation from. */
  nodeRegistry: string
  /**
   * The policy already compiled (e.g. in a child process, or from a cache): its
   * `sources[POLICY_SOURCE_NAME]` must be the source deployed. Default: compiled here.
   */
  compiled?: CompiledPolicy
}

export interface DeployedPolicy {
  readonly address: string
  readonly transactionHash: string
  /** The generated Solidity: keep it with the capsule's metadata so anyone can re-compile it. */
  readonly source: string
  readonly compiled: CompiledPolicy
}

/**
 * Generates, compiles and deploys the policy for `rule` (or deploys your own Solidity source,
 * whose constructor must take the NodeRegistry address).
 *
 * @throws {PolicyExpressionError} for a malformed rule; {PolicyCompileError} for a bad source.
 *
 * @example
 * ```ts
 * const policy = await deployPolicy(owner, all(minReputation(50), maxRuns(3)), { nodeRegistry })
 * ```
 */
export async function deployPolicy(
  signer: Signer,
  rule: PolicyExpression | { readonly source: string; readonly contractName?: string },
  options: DeployPolicyOptions,
): Promise<DeployedPolicy> {
  const source = 'source' in rule ? rule.source : generatePolicySource(rule)
  if (options.compiled && options.compiled.sources[POLICY_SOURCE_NAME] !== source) {
    throw new PolicyCompileError('The compiled policy is not of this source', {
      details: { contractName: options.compiled.contractName },
      hint: 'Compile the source being deployed (compilePolicy(source)).',
    })
  }
  const compiled =
    options.compiled ??
    compilePolicy(
      source,
      'source' in rule && rule.contractName !== undefined
        ? { contractName: rule.contractName }
        : {},
    )
  const factory = new ContractFactory(
    compiled.abi as Record<string, unknown>[],
    compiled.bytecode,
    signer as ContractRunner,
  )
  const contract = await factory.deploy(options.nodeRegistry)
  await contract.waitForDeployment()
  const tx = contract.deploymentTransaction()
  return {
    address: await contract.getAddress(),
    transactionHash: tx?.hash ?? '',
    source,
    compiled,
  }
}

/**
 * True when the code at `address` is `compiled`'s runtime bytecode (immutables masked): the check
 * anyone can run on a capsule's policy after re-compiling the source kept with its metadata.
 *
 * @example
 * ```ts
 * const ok = await verifyPolicyBytecode(provider, policyAddress, compilePolicy(source))
 * ```
 */
export async function verifyPolicyBytecode(
  provider: Provider,
  address: string,
  compiled: Pick<CompiledPolicy, 'deployedBytecode' | 'immutableReferences'>,
): Promise<boolean> {
  const onChain = getBytes(await provider.getCode(address))
  const expected = getBytes(compiled.deployedBytecode)
  if (onChain.length !== expected.length) return false
  for (const { start, length } of compiled.immutableReferences)
    onChain.fill(0, start, start + length)
  return hexlify(onChain) === hexlify(expected)
}
