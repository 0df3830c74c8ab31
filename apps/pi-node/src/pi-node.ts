/**
 * The composition root: builds the sealer, key store, chain client and p2p node from a
 * config and runs the owner's operations. No protocol logic here: every step is a call into
 * a package (`@digicap/owner` for the pipeline, `keyguard`, `contracts`, `p2p`).
 */
import {
  createKeyStore,
  type KeyStore,
  readOwner,
  recoverKeys,
  type Sealer,
  type SealerDescription,
} from '@digicap/keyguard'
import {
  createSealer,
  type PiNodeComponents,
  type PiNodeParts,
  type ProgressFn,
  peerIdOfPublicKey,
  removeLeftoverTemps,
  silent,
} from './components.ts'
import {
  loadConfig,
  type PiNodeConfig,
  piNodePaths,
  type SealerConfig,
  saveConfig,
} from './config.ts'
import { NotInitialisedError } from './errors.ts'
import { type SealOptions, type SealResult, sealPiNode } from './seal.ts'
import { type RunningPiNode, type ServeOptions, servePiNode } from './serve.ts'
import { type PiNodeStatus, statusOfPiNode } from './status.ts'

export type { OperatorStatus } from '@digicap/owner'
export type { BundleEncoder, PiNodeComponents, ProgressFn } from './components.ts'
export {
  createSealer,
  executorBundleEncoder,
  fetchChainId,
  ownerTransactions,
  peerIdOfPublicKey,
} from './components.ts'
export type { InitPiNodeOptions, InitPiNodeResult } from './init.ts'
export { initPiNode } from './init.ts'
export type { SealOptions, SealResult } from './seal.ts'
export type { RunningPiNode, ServeOptions } from './serve.ts'
export type { PiNodeStatus } from './status.ts'

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

export interface PiNode {
  readonly config: PiNodeConfig
  readonly sealer: Sealer
  readonly keyStore: KeyStore
  seal(options: SealOptions): Promise<SealResult>
  status(): Promise<PiNodeStatus>
  recover(options: RecoverOptions): Promise<RecoverResult>
  serve(options?: ServeOptions): Promise<RunningPiNode>
}

/** Re-wraps the local key store to a (new) sealer from the words; rewrites the owner file. */
async function rewrapLocal(parts: PiNodeParts, options: RecoverOptions): Promise<RecoverResult> {
  const { config, paths, keyStore, owner, logger } = parts
  const newSealer = createSealer(options.sealer ?? config.sealer, {
    createIfMissing: true,
    dataDir: config.dataDir,
    logger,
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
    const onDisk = await loadConfig(config.dataDir)
    await saveConfig({ ...onDisk, sealer: options.sealer })
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
 * const pi = await createPiNode(await loadConfig('/var/lib/digicap'))
 * const { capsuleId, cid } = await pi.seal({ file: 'photo.jpg', policy: 'maxRuns(3)' })
 * ```
 */
export async function createPiNode(
  config: PiNodeConfig,
  components: PiNodeComponents = {},
): Promise<PiNode> {
  const paths = piNodePaths(config.dataDir)
  const logger = components.logger ?? silent
  const owner = await readOwner(paths.owner)
  if (!owner) {
    throw new NotInitialisedError('No owner file in this data folder', {
      details: { dataDir: config.dataDir },
      hint: 'Run `pi-node init` (or `pi-node recover` with the paper words).',
    })
  }
  await removeLeftoverTemps(paths)
  const parts: PiNodeParts = {
    config,
    paths,
    sealer: createSealer(config.sealer, { logger, dataDir: config.dataDir }),
    keyStore: await createKeyStore(paths.keys),
    owner,
    ownerPeerId: peerIdOfPublicKey(owner.libp2pPublicKey),
    logger,
    components,
  }
  return {
    config,
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    seal: (options) => sealPiNode(parts, options),
    status: () => statusOfPiNode(parts),
    recover: (options) => rewrapLocal(parts, options),
    serve: (options) => servePiNode(parts, options),
  }
}
