/** The composition root is `@digicap/executor/node`'s node of a data folder. */
export {
  type ConfiguredExecutorNode as ExecutorNode,
  type CreateExecutorNodeOptions,
  createExecutorNode,
  type InitExecutorNodeOptions,
  initExecutorNode,
  readReceiverKeyFile as readReceiverKey,
  readSecrets,
} from '@digicap/executor/node'
export { defaultSandboxes } from '@digicap/executor/run'
