/**
 * @packageDocumentation
 *
 * `@digicap/owner/node` — the owner's node on its device (a Raspberry Pi with a TPM), built
 * from one config: `initOwnerNode` (TPM key, owner, config, contracts on a dev chain),
 * `createOwnerNode(config, components)` with `seal`, `status`, `recover` (local re-wrap),
 * `movePolicy` (a capsule to another policy, on chain then in its key record: ADR 0077) and
 * `serve` (the keyguard daemon: helia + keyguard + grant watcher + fast path + adoption on one
 * libp2p node), and `recoverOwnerNode` (the owner back from the paper words on a new Pi).
 * `pi-node` is a command line over it.
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
 * import { createOwnerNode, loadOwnerNodeConfig } from '@digicap/owner/node'
 *
 * const pi = await createOwnerNode(await loadOwnerNodeConfig('/var/lib/digicap'))
 * const { capsuleId, cid } = await pi.seal({ file: 'photo.jpg', policy: 'all(minReputation(50), maxRuns(3))' })
 * const daemon = await pi.serve({ onKeyguardEvent: (e) => console.log(e.type) })
 * console.log(await daemon.keyguard.status())
 * await daemon.stop()
 * ```
 */

export type {
  BundleEncoder,
  OwnerNodeComponents,
  OwnerNodePaths,
  ProgressFn,
} from './components.ts'
export {
  createSealer,
  executorBundleEncoder,
  ownerTransactions,
  peerIdOfPublicKey,
} from './components.ts'
export type {
  KeyguardConfig,
  OwnerNodeConfig,
  ReleaseConfig,
  SealerChoice,
  SealerConfig,
} from './config.ts'
export {
  applyOwnerNodeEnv,
  confirmationsFor,
  DEFAULT_LISTEN,
  DEFAULT_TCTI,
  finalityFor,
  loadOwnerNodeConfig,
  OWNER_NODE_CONFIG,
  ownerNodePaths,
  saveOwnerNodeConfig,
  sealerChoiceOf,
  sealerConfigOf,
} from './config.ts'
export { checkDataDir, prepareDataDir } from './data-dir.ts'
export type { InitOwnerNodeOptions, InitOwnerNodeResult } from './init.ts'
export { initOwnerNode, recoverOwnerNode } from './lazy.ts'
export { readOwnerNodeStatus } from './light.ts'
export type { MovePolicyOptions, MovePolicyResult } from './move-policy.ts'
export type { OwnerNode, RecoverOptions, RecoverResult } from './owner-node.ts'
export { createOwnerNode } from './owner-node.ts'
export { provisionSealer, releasePcrExpectation } from './provision-sealer.ts'
export type { RecoverOwnerNodeOptions, RecoverOwnerNodeResult } from './recover.ts'
export {
  checkRelease,
  defaultPolicyPcrs,
  installedRelease,
  measureInstalledRelease,
  pinRelease,
  recoverSealerSetup,
  releaseKeyHex,
  releaseToVerify,
  signInstalledRelease,
} from './release.ts'
export type { SealOptions, SealResult } from './seal.ts'
export { type ServeSealSocketInit, serveSealSocket } from './seal-socket.ts'
export {
  SEAL_SOCKET_VERSION,
  type SealInputRef,
  type SealRequest,
  SealSocketError,
} from './seal-socket-protocol.ts'
export { type SealViaDaemonOptions, sealViaDaemon } from './seal-via-daemon.ts'
export type { KeyguardNodeOptions, RunningKeyguardNode } from './serve.ts'
export type { OwnerNodeStatus } from './status.ts'
export {
  initResultText,
  keyguardStatusText,
  movePolicyResultText,
  recoverResultText,
  sealerStatusText,
  sealResultText,
} from './text.ts'
