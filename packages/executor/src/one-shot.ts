/**
 * @packageDocumentation
 *
 * `@digicap/executor/one-shot` — `createExecutorNode` (the node of a data folder, as
 * `@digicap/executor/node` has it) built as one bundle: libp2p, helia, ethers, the keyguard
 * client and the executor in one file instead of ~900 modules, for a one-shot
 * `executor-node run`, whose start-up was mostly module loading (ADR 0052). capsule-core and
 * cli-kit stay outside (one copy of their error classes for `instanceof`), and so do the
 * sandboxes' QuickJS wasm and workers, which are found by path.
 */
export {
  type ConfiguredExecutorNode,
  type CreateExecutorNodeOptions,
  createExecutorNode,
} from './node/data-folder.ts'
