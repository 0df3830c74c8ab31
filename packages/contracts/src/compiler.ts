/**
 * @packageDocumentation
 *
 * `@digicap/contracts/compiler` — the policy compiler: generated (or hand-written) policy
 * sources compiled in process with the pinned solc, deployed, and checked against the bytecode
 * on chain. Needed only where policies are compiled (the owner's pipeline, a verifier); the
 * main entry, which executors and receivers install, never loads it.
 *
 * `solc` is an optional peer dependency: install the pinned version next to this package
 * (`pnpm add solc@0.8.37`). Without it, compiling fails with a `PolicyCompileError`
 * (`details.missing: 'solc'`) that says so; importing this entry alone never fails.
 *
 * @example
 * ```ts
 * import { all, maxRuns, minReputation } from '@digicap/contracts'
 * import { deployPolicy, verifyPolicyBytecode } from '@digicap/contracts/compiler'
 *
 * const policy = await deployPolicy(owner, all(minReputation(50), maxRuns(3)), {
 *   nodeRegistry: addresses.nodeRegistry,
 * })
 * await verifyPolicyBytecode(provider, policy.address, policy.compiled)
 * ```
 */

export type {
  CompiledPolicy,
  CompilePolicyOptions,
  DeployedPolicy,
  DeployPolicyOptions,
} from './compiler/policy.ts'
export {
  compilePolicy,
  deployPolicy,
  POLICY_SOURCE_NAME,
  verifyPolicyBytecode,
} from './compiler/policy.ts'
export type { CompiledContract, CompileOutput } from './compiler/solc.ts'
export { COMPILER_SETTINGS, compileSolidity, SOLC_VERSION } from './compiler/solc.ts'
