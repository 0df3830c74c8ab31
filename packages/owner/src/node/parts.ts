/**
 * The parts of a pi-node that reading its folder needs — paths, owner file, key store, sealer,
 * peer id, `serve.json` — built without the owner's wallet, the code bundle, ethers or
 * capsule-core's codecs: `status` and every operation start from them (`openOwnerNodeParts`),
 * and `@digicap/owner/node/light` exports them (ADR 0051).
 */
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core/light'
import { NotInitialisedError, processAlive, removeStaleTemps } from '@digicap/cli-kit'
import type { KeyguardStatus } from '@digicap/keyguard'
import {
  createKeyStore,
  type KeyStore,
  type Logger,
  type OwnerInfo,
  type P256PublicKey,
  readOwner,
  type Sealer,
  softwareSealer,
  TPM2_KEY_RECORD_FILE,
  tpm2Sealer,
} from '@digicap/keyguard/files'
import { type OwnerNodeConfig, ownerNodePaths, type SealerConfig } from './config.ts'
import { peerIdOfPublicKey } from './peer-id.ts'

export type OwnerNodePaths = ReturnType<typeof ownerNodePaths>

/**
 * Turns code + data into the plaintext of a code capsule at `outputPath`. Default:
 * {@link executorBundleEncoder} (capsule-core's code-bundle format, which the executor runs).
 */
export type BundleEncoder = (input: {
  entry: string
  code: string
  data: string
  outputPath: string
}) => Promise<void>

export interface OwnerNodeComponents {
  /** Where warnings and events go. Default: silent. */
  logger?: Logger
  /** The code-capsule bundle encoder. Default {@link executorBundleEncoder}. */
  encodeBundle?: BundleEncoder
}

/** What every operation of a pi-node is built from (made once by `createOwnerNode`). */
export interface OwnerNodeParts {
  config: OwnerNodeConfig
  paths: OwnerNodePaths
  sealer: Sealer
  keyStore: KeyStore
  owner: OwnerInfo
  /** The owner's libp2p peer id: this keyguard's. */
  ownerPeerId: string
  logger: Logger
  components: OwnerNodeComponents
}

export const silent: Logger = { info() {}, warn() {} }

/** `{ code, message }` of any error, for logs and JSON (never a stack or a secret). */
export function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof DigicapError) return { code: err.code, message: err.shortMessage }
  return { code: 'UNKNOWN', message: (err as Error)?.message ?? String(err) }
}

/**
 * The sealer a config describes. `createIfMissing` is for `init` and `recover`. `dataDir`: the
 * tpm2 sealer pins its key in `<dataDir>/tpm2-key.json` (and keeps a PCR policy there).
 */
export function createSealer(
  config: SealerConfig,
  options: {
    createIfMissing?: boolean
    logger?: Logger
    dataDir?: string
    /** With `config.pcrs`: the owner's authorizing key a new key's policy names (init, recover). */
    policyAuthKey?: P256PublicKey
    /** With `createIfMissing`: replace a TPM key whose policy does not fit (init --force). */
    replaceUnfitKey?: boolean
    /** The TPM makers' CA bundle (PEM file) a new key's TPM must chain to (ADR 0097). */
    ekRoots?: string | undefined
  } = {},
): Sealer {
  const common = {
    createIfMissing: options.createIfMissing ?? false,
    ...(options.logger ? { logger: options.logger } : {}),
  }
  if (config.kind === 'tpm2') {
    const { pcrs } = config
    const authKey = options.policyAuthKey
    return tpm2Sealer({
      tcti: config.tcti,
      ...(config.handle !== undefined ? { handle: config.handle } : {}),
      ...(options.dataDir ? { keyRecordFile: join(options.dataDir, TPM2_KEY_RECORD_FILE) } : {}),
      ...(pcrs !== undefined && authKey !== undefined ? { pcrPolicy: { authKey, pcrs } } : {}),
      ...(config.allowUnencryptedTransport === true ? { allowUnencryptedTransport: true } : {}),
      ...(options.replaceUnfitKey === true ? { replaceUnfitKey: true } : {}),
      // A key is pinned only once its TPM is proven genuine, or the owner allowed it (ADR 0097).
      ekActivation: { ekRoots: options.ekRoots, allowUnverified: config.allowUnverifiedTpm },
      ...common,
    })
  }
  return softwareSealer({ keyFile: config.keyFile, allowInsecure: config.allowInsecure, ...common })
}

/** What a running `serve` writes to `serve.json`. */
export interface ServeFile {
  pid: number
  peerId: string
  multiaddrs: string[]
  startedAt: string
  updatedAt?: string
  keyguard?: KeyguardStatus
}

/** The running daemon's `serve.json`, or undefined (none, malformed, or its pid is gone). */
export async function readServeFile(path: string): Promise<ServeFile | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as ServeFile
    if (typeof s.pid !== 'number' || !Array.isArray(s.multiaddrs)) return undefined
    return processAlive(s.pid) ? s : undefined
  } catch {
    return undefined
  }
}

/**
 * Removes the temp files of atomic writes a crash left behind in the folders pi-node writes
 * into itself: the data folder (config, owner file, `serve.json`) and each capsule's folder.
 * The key store and the keyguard clean their own folders when they open. Temps of a running
 * writer (a concurrent `seal`, the daemon) are kept: their pid is alive.
 */
export async function removeLeftoverTemps(paths: OwnerNodePaths): Promise<void> {
  const dirs = [dirname(paths.config)]
  const capsules = await readdir(paths.capsules, { withFileTypes: true }).catch(() => [])
  for (const d of capsules) if (d.isDirectory()) dirs.push(join(paths.capsules, d.name))
  for (const dir of dirs) await removeStaleTemps(dir)
}

/**
 * Reads the data folder's owner file and builds the parts every operation uses. Reads nothing
 * secret; removes the temp files a crash left (a killed code seal's plaintext bundle among them).
 * @throws {NotInitialisedError} if the owner file is missing.
 */
export async function openOwnerNodeParts(
  config: OwnerNodeConfig,
  components: OwnerNodeComponents = {},
): Promise<OwnerNodeParts> {
  const paths = ownerNodePaths(config.dataDir)
  const logger = components.logger ?? silent
  const owner = await readOwner(paths.owner)
  if (!owner) {
    throw new NotInitialisedError('No owner file in this data folder', {
      details: { dataDir: config.dataDir },
      hint: 'Run `pi-node init` (or `pi-node recover` with the paper words).',
    })
  }
  await removeLeftoverTemps(paths)
  return {
    config,
    paths,
    sealer: createSealer(config.sealer, {
      logger,
      dataDir: config.dataDir,
      ekRoots: config.keyguard?.ekRoots,
    }),
    keyStore: await createKeyStore(paths.keys),
    owner,
    ownerPeerId: peerIdOfPublicKey(owner.libp2pPublicKey),
    logger,
    components,
  }
}
