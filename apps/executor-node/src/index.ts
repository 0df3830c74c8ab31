/**
 * @packageDocumentation
 *
 * `@digicap/executor-node` — the executor's CLI and daemon. The library face is the
 * composition root used by the CLI: `createExecutorNode(dataDir, env)` loads
 * `<dataDir>/config.json` and the identity and opens `@digicap/executor/node`'s node on them.
 *
 * @example
 * ```ts
 * const en = await createExecutorNode('/var/lib/digicap/executor', process.env)
 * const run = await en.executor.runCapsule(cid, { fast: true })
 * await en.stop()
 * ```
 */
export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  InsufficientFundsError,
  NotInitialisedError,
  UsageError,
} from '@digicap/cli-kit'
export { parseRoles } from './commands/register.ts'
export * from './config.ts'
export * from './executor-node.ts'
export { type CliIo, runCli } from './main.ts'
