/**
 * The owner's node on its device (a Raspberry Pi with a TPM): builds the sealer, key store,
 * chain client and p2p node from one config and runs the owner's operations — seal, status,
 * local re-wrap, and the keyguard daemon (`serve`). Every step is a call into the owner
 * pipeline or into `keyguard`, `contracts`, `p2p`.
 */
import {
  type KeyStore,
  recoverKeys,
  type Sealer,
  type SealerDescription,
} from '@digicap/keyguard/local'
// Each operation loads its own modules when called (seal: no libp2p; status: no helia; serve:
// everything), so a one-shot command pays only for what it runs.
import type { ProgressFn } from './components.ts'
import {
  loadOwnerNodeConfig,
  type OwnerNodeConfig,
  type SealerConfig,
  saveOwnerNodeConfig,
} from './config.ts'
import type { MovePolicyOptions, MovePolicyResult } from './move-policy.ts'
import { type OwnerNodeComponents, type OwnerNodeParts, openOwnerNodeParts } from './parts.ts'
import { provisionSealer } from './provision-sealer.ts'
import type { SealOptions, SealResult } from './seal.ts'
import type { KeyguardNodeOptions, RunningKeyguardNode } from './serve.ts'
import type { OwnerNodeStatus } from './status.ts'

export interface RecoverOptions {
  mnemonic: string
  passphrase?: string
  /** Replace the sealer (e.g. the new TPM's TCTI); saved to the config. */
  sealer?: SealerConfig
  onProgress?: ProgressFn
}

export interface RecoverResult {
  recovered: string[]
  failed: { capsuleId: string; code: string }[]
  owner: string
  sealer: SealerDescription
}

export interface OwnerNode {
  readonly config: OwnerNodeConfig
  readonly sealer: Sealer
  readonly keyStore: KeyStore
  seal(options: SealOptions): Promise<SealResult>
  status(): Promise<OwnerNodeStatus>
  recover(options: RecoverOptions): Promise<RecoverResult>
  /**
   * Moves a capsule to another policy on chain, then its key record (`moveCapsulePolicy`, ADR
   * 0077): a deployed policy's address, or an expression deployed first. Calling it again
   * finishes a move a crash interrupted (re-using a deployment it made for the same expression).
   */
  movePolicy(options: MovePolicyOptions): Promise<MovePolicyResult>
  serve(options?: KeyguardNodeOptions): Promise<RunningKeyguardNode>
}

/** Re-wraps the local key store to a (new) sealer from the words; rewrites the owner file. */
async function rewrapLocal(parts: OwnerNodeParts, options: RecoverOptions): Promise<RecoverResult> {
  const { config, paths, keyStore, owner, logger } = parts
  const newSealer = await provisionSealer(options.sealer ?? config.sealer, {
    dataDir: config.dataDir,
    mnemonic: options.mnemonic,
    logger,
    release: config.release,
  })
  const result = await recoverKeys({
    mnemonic: options.mnemonic,
    ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
    store: keyStore,
    newSealer,
    ownerPath: paths.owner,
    onProgress: (done: number, total: number) => options.onProgress?.('recover', done, total),
  })
  if (options.sealer) {
    const onDisk = await loadOwnerNodeConfig(config.dataDir)
    await saveOwnerNodeConfig({ ...onDisk, sealer: options.sealer })
  }
  return {
    recovered: result.recovered,
    failed: result.failed,
    owner: owner.address,
    sealer: await newSealer.describe(),
  }
}

/**
 * Builds a pi-node from its config. Reads nothing secret until an operation needs it.
 *
 * @throws {NotInitialisedError} if the owner file is missing.
 * @example
 * ```ts
 * const pi = await createOwnerNode(await loadOwnerNodeConfig('/var/lib/digicap'))
 * const { capsuleId, cid } = await pi.seal({ file: 'photo.jpg', policy: 'maxRuns(3)' })
 * ```
 */
export async function createOwnerNode(
  config: OwnerNodeConfig,
  components: OwnerNodeComponents = {},
): Promise<OwnerNode> {
  const parts = await openOwnerNodeParts(config, components)
  return {
    config,
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    seal: async (options) => (await import('./seal.ts')).sealOwnerNode(parts, options),
    status: async () => (await import('./status.ts')).statusOfOwnerNode(parts),
    recover: (options) => rewrapLocal(parts, options),
    movePolicy: async (options) =>
      (await import('./move-policy.ts')).movePolicyOfOwnerNode(parts, options),
    serve: async (options) => (await import('./serve.ts')).startKeyguardNode(parts, options),
  }
}
