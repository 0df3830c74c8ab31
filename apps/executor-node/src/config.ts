/** The executor-node config is `@digicap/executor/node`'s; the data folder is the app's. */
export { writeJsonAtomic } from '@digicap/cli-kit'
export {
  applyEnv,
  checkConfig,
  EXECUTOR_NODE_CONFIG,
  type ExecutorNodeConfig,
  executorNodePaths,
  loadConfig,
  resolveConfig,
} from '@digicap/executor/node'
export { resolveDataDir } from './data-dir.ts'
