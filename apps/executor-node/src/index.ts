/**
 * @packageDocumentation
 *
 * `@digicap/executor-node` — the executor's CLI and daemon. The library face is the
 * composition root used by the CLI: `createExecutorNode(dataDir, env)` loads
 * `<dataDir>/config.json` and the identity and opens `@digicap/executor/node`'s node on them.
 *
 * @example
 * ```ts
 * import { createExecutorNode } from '@digicap/executor-node'
 *
 * const en = await createExecutorNode('/var/lib/digicap/executor', process.env)
 * const run = await en.executor.runCapsule(cid, { fast: true })
 * await en.stop()
 * ```
 */
export { parseRoles } from './commands/register.ts'
export type { ExecutorNodeConfig } from './config.ts'
export { applyEnv, checkConfig, executorNodePaths, loadConfig, resolveDataDir } from './config.ts'
export * from './errors.ts'
export type {
  CreateExecutorNodeOptions,
  ExecutorNode,
  InitExecutorNodeOptions,
} from './executor-node.ts'
export {
  createExecutorNode,
  defaultSandboxes,
  initExecutorNode,
  readIdentity,
  readReceiverKey,
} from './executor-node.ts'
export type { CliIo } from './main.ts'
export { runCli } from './main.ts'
