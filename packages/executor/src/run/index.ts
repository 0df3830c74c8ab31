/**
 * @packageDocumentation
 *
 * `@digicap/executor/run` — a run's stages once the data key is released, without the node:
 * the open (the payload streamed to the run's tmpfs file, ADR 0035), the sandboxes, the run and
 * its clean-up. A process that only opens and runs (a bench, a worker) loads this and none of
 * libp2p, helia or ethers, which the package's index brings for the node.
 *
 * @example
 * ```ts
 * import { createRunWorkspace, defaultSandboxes, openJob, plaintextRootOf, runInSandbox } from '@digicap/executor/run'
 *
 * const workspace = createRunWorkspace()
 * const sandbox = defaultSandboxes().data
 * const job = await openJob({ loaded, sandbox, dataKey, workspace, plaintextRoot: await plaintextRootOf({}) })
 * const { result, cleanup } = await runInSandbox({ sandbox, job, workspace })
 * ```
 */
export { DATA_RUNTIME_ID, dataSandbox } from '../sandbox/data.ts'
export { defaultSandboxes } from '../sandbox/defaults.ts'
export { resolveRuntime } from '../sandbox/runtime.ts'
export type { SandboxSet } from '../sandbox/select.ts'
export type { Sandbox, SandboxJob, SandboxResult } from '../sandbox/types.ts'
export { type OpenJobParameters, openJob, plaintextRootOf } from './open-job.ts'
export { type RunInSandboxParameters, type RunInSandboxReturnType, runInSandbox } from './run.ts'
export {
  type CleanupReport,
  createRunWorkspace,
  type RunWorkspace,
  type RunWorkspaceInit,
} from './workspace.ts'
