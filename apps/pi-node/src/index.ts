/**
 * @packageDocumentation
 *
 * `@digicap/pi-node` — the capsule owner's node for a Raspberry Pi with a TPM, as a library
 * (the `pi-node` CLI is a thin shell over it). A composition root: it builds the sealer
 * and keyguard runtime (`@digicap/keyguard`), the chain client (`@digicap/contracts`), the
 * owner's pipeline (`@digicap/owner`), the code bundle (`@digicap/capsule-core`) and the p2p node
 * (`@digicap/p2p`) from one config. A laptop that seals for this Pi uses `@digicap/owner` with
 * the keyguard card `status()` reports; `serve` adopts those capsules when announced.
 *
 * Guarantees:
 * - The owner's Ethereum key and libp2p seed are unwrapped by the sealer only for the
 *   operation that needs them, and zeroed after; data keys are zeroed after sealing.
 * - Data keys are stored only wrapped (to the sealer and to the mnemonic's recovery key)
 *   before the capsule is registered on chain.
 * - Capsule files are written to a `.partial` file and renamed into place; config and
 *   metadata files are written atomically with mode 0600.
 * - The software sealer is refused unless explicitly allowed, and reported as insecure.
 *
 * @example
 * ```ts
 * import { createPiNode, loadConfig } from '@digicap/pi-node'
 *
 * const pi = await createPiNode(await loadConfig('/var/lib/digicap'))
 * const { capsuleId, cid } = await pi.seal({ file: 'photo.jpg', policy: 'all(minReputation(50), maxRuns(3))' })
 * // helia + the keyguard (grant watcher, key releaser, fast path) on one libp2p node
 * const daemon = await pi.serve({ onKeyguardEvent: (e) => console.log(e.type) })
 * console.log(await daemon.keyguard.status())
 * await daemon.stop()
 * ```
 */

export type { KeyguardConfig, PiNodeConfig, SealerConfig } from './config.ts'
export {
  applyEnv,
  confirmationsFor,
  DEFAULT_LISTEN,
  DEFAULT_TCTI,
  loadConfig,
  piNodePaths,
  resolveDataDir,
  saveConfig,
} from './config.ts'
export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  DaemonRunningError,
  InputFileError,
  NotInitialisedError,
  RuntimeUnsupportedError,
  UsageError,
} from './errors.ts'
export type { CliIo } from './main.ts'
export { runCli } from './main.ts'
export type {
  BundleEncoder,
  InitPiNodeOptions,
  InitPiNodeResult,
  OperatorStatus,
  PiNode,
  PiNodeComponents,
  PiNodeStatus,
  ProgressFn,
  RecoverOptions,
  RecoverResult,
  RunningPiNode,
  SealOptions,
  SealResult,
  ServeOptions,
} from './pi-node.ts'
export {
  createPiNode,
  createSealer,
  executorBundleEncoder,
  fetchChainId,
  initPiNode,
  peerIdOfPublicKey,
} from './pi-node.ts'
export type { RecoverPiNodeOptions, RecoverPiNodeResult } from './recover.ts'
export { recoverPiNode } from './recover.ts'
