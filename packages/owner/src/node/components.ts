/**
 * The parts every pi-node operation builds from the config and the data folder: the sealer,
 * the owner's wallet (unwrapped for one operation), the owner-transaction lock, the chain id
 * check, and the files a running `serve` leaves.
 */
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { DigicapError, type DigicapSigner, privateKeySigner, toHex } from '@digicap/capsule-core'
import { processAlive, removeStaleTemps, withFileLock, writeJsonAtomic } from '@digicap/cli-kit'
import type { KeyguardStatus } from '@digicap/keyguard'
import {
  type KeyStore,
  type Logger,
  type OwnerInfo,
  type P256PublicKey,
  type Sealer,
  softwareSealer,
  TPM2_KEY_RECORD_FILE,
  tpm2Sealer,
  unwrapOwnerSecrets,
} from '@digicap/keyguard/local'
import type { JsonRpcProvider, Wallet } from 'ethers'
import { writeCodeBundle } from '../bundle/code-bundle.ts'
import type { OwnerNodeConfig, ownerNodePaths, SealerConfig } from './config.ts'

export type OwnerNodePaths = ReturnType<typeof ownerNodePaths>

/** Progress of a long step: `phase` names it, `done`/`total` are bytes (or items). */
export type ProgressFn = (phase: string, done: number, total: number) => void

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

/**
 * The code-bundle format the executor runs (capsule-core's): `code` is one file (stored under
 * the name `entry`) or a folder (every file under its relative path); `data` is the file
 * being sealed. @throws {InputFileError} if the code cannot be read; `BUNDLE_FORMAT`.
 */
export const executorBundleEncoder: BundleEncoder = async ({ entry, code, data, outputPath }) => {
  await writeCodeBundle({ entry, code, data, output: outputPath })
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
 * Runs `fn`, which sends (and waits for) transactions from the owner account, while holding
 * the data folder's owner-transaction lock: two `pi-node seal` (or `seal` and `serve`) at once
 * would otherwise both read the same pending nonce and one transaction would be dropped. Held
 * only around sending, never around sealing or adding blocks.
 * @throws {LockTimeoutError} if another process holds it for more than two minutes.
 */
export function ownerTransactions<T>(paths: OwnerNodePaths, fn: () => Promise<T>): Promise<T> {
  return withFileLock(paths.ownerLock, fn, { what: "owner account's transaction lock" })
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
      ...common,
    })
  }
  return softwareSealer({ keyFile: config.keyFile, allowInsecure: config.allowInsecure, ...common })
}

export { peerIdOfPublicKey } from './peer-id.ts'

/** The owner's account for one operation: an ethers wallet (transactions) and a signer. */
export interface OwnerAccount {
  wallet: Wallet
  signer: DigicapSigner
  provider: JsonRpcProvider
}

/**
 * Unwraps the owner's Ethereum key with the sealer for the length of `fn`; the byte copy is
 * zeroed and the provider destroyed after.
 */
export async function withOwnerAccount<T>(
  paths: OwnerNodePaths,
  sealer: Sealer,
  chain: Pick<OwnerNodeConfig, 'rpcUrl' | 'chainId'>,
  fn: (account: OwnerAccount) => Promise<T>,
): Promise<T> {
  const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
  secrets.libp2pSeed.fill(0)
  secrets.operatorPrivateKey?.fill(0)
  // ethers loads here, for the operations that send transactions, not with the node.
  const [{ createProvider }, { Wallet }] = await Promise.all([
    import('@digicap/contracts'),
    import('ethers'),
  ])
  const provider = createProvider(chain.rpcUrl, chain.chainId)
  try {
    const key = secrets.ethereumPrivateKey
    const wallet = new Wallet(toHex(key), provider)
    return await fn({ wallet, signer: privateKeySigner(key), provider })
  } finally {
    secrets.ethereumPrivateKey.fill(0)
    provider.destroy()
  }
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

/** Writes a JSON file atomically; a failure is logged, not thrown (status files). */
export async function writeJsonAtomicQuiet(path: string, value: unknown, logger: Logger) {
  await writeJsonAtomic(path, value).catch((err) =>
    logger.warn(`cannot write ${path}`, { code: errorInfo(err).code }),
  )
}
