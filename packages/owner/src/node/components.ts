/**
 * The parts every pi-node operation builds from the config and the data folder: the sealer,
 * the owner's wallet (unwrapped for one operation), the owner-transaction lock, the chain id
 * check, and the files a running `serve` leaves.
 */
import { type DigicapSigner, privateKeySigner, toHex } from '@digicap/capsule-core'
import { withFileLock, writeJsonAtomic } from '@digicap/cli-kit'
import type { KeyTransactor } from '@digicap/contracts/light'
import { type Logger, type Sealer, unwrapOwnerEthereumKey } from '@digicap/keyguard/local'
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

/**
 * The owner's account for one operation: an ethers wallet (transactions), the same key over
 * plain JSON-RPC (a policy's creation, whose address it computes from the nonce it signed),
 * and a signer.
 */
export interface OwnerAccount {
  wallet: Wallet
  transactor: KeyTransactor
  signer: DigicapSigner
  provider: JsonRpcProvider
}

/** The owner's key for one operation: its transactions over plain JSON-RPC, and a signer. */
export interface OwnerKey {
  transactor: KeyTransactor
  signer: DigicapSigner
}

/**
 * Unwraps the owner's Ethereum key with the sealer for the length of `fn`; the byte copy is
 * zeroed after. The libp2p and operator secrets stay wrapped: no operation here needs them.
 */
async function withOwnerPrivateKey<T>(
  paths: OwnerNodePaths,
  sealer: Sealer,
  fn: (key: Uint8Array) => Promise<T>,
): Promise<T> {
  const key = await unwrapOwnerEthereumKey(paths.owner, sealer)
  try {
    return await fn(key)
  } finally {
    key.fill(0)
  }
}

/**
 * The owner's account as an ethers wallet for the length of `fn` (operations that call
 * contracts through ethers: recovery); the key is zeroed and the provider destroyed after.
 */
export async function withOwnerAccount<T>(
  paths: OwnerNodePaths,
  sealer: Sealer,
  chain: Pick<OwnerNodeConfig, 'rpcUrl' | 'chainId'>,
  fn: (account: OwnerAccount) => Promise<T>,
): Promise<T> {
  return withOwnerPrivateKey(paths, sealer, async (key) => {
    // ethers loads here, for the operations that need it, not with the node.
    const [{ createProvider }, { privateKeyTransactor }, { Wallet }] = await Promise.all([
      import('@digicap/contracts'),
      import('@digicap/contracts/light'),
      import('ethers'),
    ])
    const provider = createProvider(chain.rpcUrl, chain.chainId)
    try {
      const wallet = new Wallet(toHex(key), provider)
      const transactor = privateKeyTransactor({
        rpcUrl: chain.rpcUrl,
        chainId: chain.chainId,
        privateKey: key,
      })
      return await fn({ wallet, transactor, signer: privateKeySigner(key), provider })
    } finally {
      provider.destroy()
    }
  })
}

/**
 * The owner's key for the length of `fn`, sending over plain JSON-RPC (`pi-node seal`: a
 * policy's creation and the registration, no ethers loaded); the key is zeroed after.
 */
export async function withOwnerKey<T>(
  paths: OwnerNodePaths,
  sealer: Sealer,
  chain: Pick<OwnerNodeConfig, 'rpcUrl' | 'chainId'>,
  fn: (key: OwnerKey) => Promise<T>,
): Promise<T> {
  return withOwnerPrivateKey(paths, sealer, async (key) => {
    const { privateKeyTransactor } = await import('@digicap/contracts/light')
    const transactor = privateKeyTransactor({
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      privateKey: key,
    })
    return await fn({ transactor, signer: privateKeySigner(key) })
  })
}

/** Writes a JSON file atomically; a failure is logged, not thrown (status files). */
export async function writeJsonAtomicQuiet(path: string, value: unknown, logger: Logger) {
  await writeJsonAtomic(path, value).catch((err) =>
    logger.warn(`cannot write ${path}`, { code: errorInfo(err).code }),
  )
}
