/**
 * The parts every pi-node operation builds from the config and the data folder: the sealer,
 * the owner's wallet (unwrapped for one operation), the owner-transaction lock, the chain id
 * check, and the files a running `serve` leaves.
 */
import { type DigicapSigner, privateKeySigner, toHex } from '@digicap/capsule-core'
import { withFileLock, writeJsonAtomic } from '@digicap/cli-kit'
import { type Logger, type Sealer, unwrapOwnerSecrets } from '@digicap/keyguard/local'
import type { JsonRpcProvider, Wallet } from 'ethers'
import { writeCodeBundle } from '../bundle/code-bundle.ts'
import type { OwnerNodeConfig } from './config.ts'
import { type BundleEncoder, errorInfo, type OwnerNodePaths } from './parts.ts'

/** Progress of a long step: `phase` names it, `done`/`total` are bytes (or items). */
export type ProgressFn = (phase: string, done: number, total: number) => void

/**
 * The code-bundle format the executor runs (capsule-core's): `code` is one file (stored under
 * the name `entry`) or a folder (every file under its relative path); `data` is the file
 * being sealed. @throws {InputFileError} if the code cannot be read; `BUNDLE_FORMAT`.
 */
export const executorBundleEncoder: BundleEncoder = async ({ entry, code, data, outputPath }) => {
  await writeCodeBundle({ entry, code, data, output: outputPath })
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

export {
  type BundleEncoder,
  createSealer,
  errorInfo,
  type OwnerNodeComponents,
  type OwnerNodeParts,
  type OwnerNodePaths,
  openOwnerNodeParts,
  readServeFile,
  removeLeftoverTemps,
  type ServeFile,
  silent,
} from './parts.ts'
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

/** Writes a JSON file atomically; a failure is logged, not thrown (status files). */
export async function writeJsonAtomicQuiet(path: string, value: unknown, logger: Logger) {
  await writeJsonAtomic(path, value).catch((err) =>
    logger.warn(`cannot write ${path}`, { code: errorInfo(err).code }),
  )
}
