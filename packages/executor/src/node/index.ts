/**
 * @packageDocumentation
 *
 * `@digicap/executor/node` — the executor node, composed once for every front end (the
 * `executor-node` CLI and daemon, the SDK's `runCapsule`): the executor on a helia/libp2p node,
 * a result receiver on the same node, NodeRegistry registration with a funds check, and the
 * opt-in TPM attestation (the agent's record hash registered, `/digicap/attest/1.0.0` served).
 *
 * `executorNode(init)(components)` takes its parts (node, chain client, signer, attestation);
 * `openExecutorNode(params)` builds the stock ones (ethers, helia) from an RPC and two keys.
 *
 * @example
 * ```ts
 * import { openExecutorNode } from '@digicap/executor/node'
 *
 * const en = await openExecutorNode({ rpcUrl, chainId, contracts, accountKey, libp2pSeed })
 * await en.register({ stake: 10n ** 16n })
 * const run = await en.executor.runCapsule(cid, { fast: true })
 * await en.stop()
 * ```
 */

export type { LoadNodeAttestationParameters } from './attestation.ts'
export { loadNodeAttestation } from './attestation.ts'
// The whole config module is public (what the executor-node app re-exports by name).
export * from './config.ts'
export type { DaemonLine, FollowAnnouncementsInit } from './daemon.ts'
export {
  autoRunLine,
  followAnnouncements,
  printable,
  receivedLine,
  refusedLine,
  startedLine,
} from './daemon.ts'
export {
  type ConfiguredExecutorNode,
  type CreateExecutorNodeOptions,
  createExecutorNode,
  type InitExecutorNodeOptions,
  initExecutorNode,
} from './data-folder.ts'
export { executorNode } from './executor-node.ts'
export type { ImageRegistry, ServeImageRegistryParameters } from './image-registry.ts'
export { serveImageRegistry } from './image-registry.ts'
export type {
  JobCommittees,
  JobCommitteesComponents,
  JobCommitteesInit,
} from './job-committees.ts'
export { hubCommittees } from './job-committees.ts'
export { readSecrets } from './node-keys.ts'
export type { OpenExecutorNodeParameters } from './open.ts'
export { openExecutorNode } from './open.ts'
export { createReceiverKeyFile, readReceiverKeyFile } from './receiver-key.ts'
export { ethersChainFunds, NODE_ROLES, requireStakeFunds } from './register.ts'
export type { RunPcrState } from './run-pcr.ts'
export { readRunPcrState, resetRunPcr, runPcrAtStart } from './run-pcr.ts'
export { skipRunPcrReset, type TamperedAgent } from './tampered-agent.ts'
export type {
  ChainFunds,
  ExecutorChainConnection,
  ExecutorNode,
  ExecutorNodeComponents,
  ExecutorNodeInit,
  NodeAttestation,
  RegisterNodeParameters,
  RegisterNodeReturnType,
} from './types.ts'
export * from './verifier/index.ts'
