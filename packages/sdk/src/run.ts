/**
 * @packageDocumentation
 *
 * `@digicap/sdk/run` — run capsules as an executor: `runCapsule` (chain or fast path, result
 * delivered to the capsule's receivers) and `registerExecutor`. Needs `@digicap/executor`
 * installed beside `@digicap/sdk` (an optional peer: receivers do not need it).
 *
 * @example
 * ```ts
 * import { runCapsule } from '@digicap/sdk/run'
 *
 * const run = await runCapsule({ network: 'local', signer, identity, cid, path: 'fast', peers: [keyguard] })
 * console.log(run.runId, new TextDecoder().decode(run.output))
 * ```
 */
export type { ExecutorIdentity } from './run/executor-session.ts'
export type {
  RegisterExecutorParameters,
  RegisterExecutorReturnType,
} from './run/register-executor.ts'
export { registerExecutor } from './run/register-executor.ts'
export type { RunCapsuleParameters, RunCapsuleReturnType } from './run/run-capsule.ts'
export { runCapsule } from './run/run-capsule.ts'
