/**
 * The owner file: what a running keyguard needs of the owner's identity without the paper
 * words. Public parts in clear (address, recovery public key, libp2p public key); the
 * secrets a 24/7 node must use (the Ethereum key that signs capsule headers, the libp2p
 * seed) only wrapped to the sealer. Everything in it can be rebuilt from the mnemonic.
 *
 * File format, version 2 (JSON, mode 0600, written atomically):
 * `{ "version": 2, "address": "0x…", "operatorAddress": "0x…", "recoveryPublicKey": "<hex>",
 *    "libp2pPublicKey": "<hex>", "createdAt": "…Z", "ethereumPrivateKey": <wrapped>,
 *    "operatorPrivateKey": <wrapped>, "libp2pSeed": <wrapped> }`
 * where `<wrapped>` is `{ "scheme", "keyId", "ciphertext": "<base64>" }`. Version 1 (written
 * before the keyguard operator account) lacks `operatorAddress` and `operatorPrivateKey`; it
 * is still read (no operator: {@link restoreOwner} from the words rewrites it as version 2).
 */
import { dirname } from 'node:path'
import { bytesToHex } from '@noble/hashes/utils.js'
import { KeyExistsError, RecoveryKeyMismatchError } from '../errors.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapDataKey } from '../sealers/wrap.ts'
import { ensureDir, writeFileAtomic } from '../store/fs-atomic.ts'
import { corrupt, encodeWrappedKey } from '../store/json-file.ts'
import { type OwnerInfo, readOwnerFile } from './owner-file.ts'
import {
  deriveOwnerIdentity,
  ethereumAddress,
  generateMnemonic,
  type OwnerIdentity,
  wipeOwnerIdentity,
} from './recovery.ts'

/**
 * The Ed25519 curve (~10 modules of noble) loads when an owner file is written or its secrets
 * checked, not with the file's reading: `pi-node status` only reads it (ADR 0051).
 */
export { type OwnerInfo, readOwner } from './owner-file.ts'

const loadEd25519 = () => import('@noble/curves/ed25519.js')

/** The owner's runtime secrets, unwrapped by the sealer. Zero them when done. */
export interface OwnerSecrets {
  ethereumPrivateKey: Uint8Array
  /** The keyguard operator account's key; absent in a version-1 owner file. */
  operatorPrivateKey?: Uint8Array
  libp2pSeed: Uint8Array
}

async function writeOwnerFile(
  path: string,
  identity: OwnerIdentity,
  sealer: Sealer,
  options: { replace: boolean; createdAt?: string },
): Promise<OwnerInfo> {
  const { ed25519 } = await loadEd25519()
  const info: OwnerInfo = {
    address: identity.address,
    operatorAddress: identity.operatorAddress,
    recoveryPublicKey: identity.recoveryKeyPair.publicKey,
    recoveryKeyId: identity.recoveryKeyId,
    libp2pPublicKey: ed25519.getPublicKey(identity.libp2pSeed),
    createdAt: options.createdAt ?? new Date().toISOString(),
  }
  const body = {
    version: 2,
    address: info.address,
    operatorAddress: identity.operatorAddress,
    recoveryPublicKey: bytesToHex(info.recoveryPublicKey),
    libp2pPublicKey: bytesToHex(info.libp2pPublicKey),
    createdAt: info.createdAt,
    ethereumPrivateKey: encodeWrappedKey(await sealer.wrap(identity.ethereumPrivateKey)),
    operatorPrivateKey: encodeWrappedKey(await sealer.wrap(identity.operatorPrivateKey)),
    libp2pSeed: encodeWrappedKey(await sealer.wrap(identity.libp2pSeed)),
  }
  await ensureDir(dirname(path))
  try {
    await writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(body, null, 2)}\n`), {
      exclusive: !options.replace,
    })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyExistsError('This keyguard already has an owner', {
        details: { path },
        hint: 'Initialise once; to move to a new TPM use recovery.',
      })
    }
    throw err
  }
  return info
}

export interface InitOwnerOptions {
  /** Path of the owner file, e.g. `/var/lib/digicap/owner.json`. */
  path: string
  sealer: Sealer
  /** Words to use; default: a fresh 24-word mnemonic. */
  mnemonic?: string
  passphrase?: string
}

/**
 * `init`: creates (or takes) the mnemonic, derives the owner identity, and writes the owner
 * file with the runtime secrets wrapped to the sealer. Returns the words to show ONCE.
 *
 * @throws {KeyExistsError} if the owner file exists.
 * @throws {InvalidMnemonicError} for given words that are not a valid mnemonic.
 * @example
 * ```ts
 * const { mnemonic, owner } = await initOwner({ path: '/var/lib/digicap/owner.json', sealer })
 * console.log('Write these words on paper:', mnemonic)
 * ```
 */
export async function initOwner(
  options: InitOwnerOptions,
): Promise<{ mnemonic: string; owner: OwnerInfo }> {
  const mnemonic = options.mnemonic ?? generateMnemonic()
  const identity = await deriveOwnerIdentity(mnemonic, options.passphrase ?? '')
  try {
    const owner = await writeOwnerFile(options.path, identity, options.sealer, { replace: false })
    return { mnemonic, owner }
  } finally {
    wipeOwnerIdentity(identity)
  }
}

/**
 * Unwraps the owner's runtime secrets with the sealer and checks them against the public
 * parts (a swapped file fails rather than signing with someone else's key).
 *
 * @throws {UnwrapError} if the sealer cannot unwrap them (another TPM: run recovery).
 * @throws {KeyStoreCorruptError} if the file is missing, corrupt, or its parts do not match.
 */
export async function unwrapOwnerSecrets(path: string, sealer: Sealer): Promise<OwnerSecrets> {
  const file = await readOwnerFile(path)
  if (!file) corrupt(path, 'missing')
  const ethereumPrivateKey = await unwrapDataKey([file.ethereumPrivateKey], sealer)
  const libp2pSeed = await unwrapDataKey([file.libp2pSeed], sealer)
  const operatorPrivateKey = file.operatorPrivateKey
    ? await unwrapDataKey([file.operatorPrivateKey], sealer)
    : undefined
  const { ed25519 } = await loadEd25519()
  const ok =
    isKeyOf(ethereumPrivateKey, file.address) &&
    libp2pSeed.length === 32 &&
    bytesToHex(ed25519.getPublicKey(libp2pSeed)) === bytesToHex(file.libp2pPublicKey) &&
    (operatorPrivateKey === undefined || isKeyOf(operatorPrivateKey, file.operatorAddress ?? ''))
  if (!ok) {
    ethereumPrivateKey.fill(0)
    libp2pSeed.fill(0)
    operatorPrivateKey?.fill(0)
    corrupt(path, 'secret-mismatch')
  }
  return { ethereumPrivateKey, libp2pSeed, ...(operatorPrivateKey ? { operatorPrivateKey } : {}) }
}

/**
 * Unwraps only the owner's Ethereum key, checked against the file's address: all that signing
 * a capsule header or sending the owner's transactions needs (`pi-node seal`). The libp2p seed
 * and the operator key stay wrapped: one sealer call instead of three (each a TPM command on a
 * Pi), and secrets an operation does not use never reach its memory.
 *
 * @throws {UnwrapError} if the sealer cannot unwrap it (another TPM: run recovery).
 * @throws {KeyStoreCorruptError} if the file is missing, corrupt, or the key is not the address's.
 * @example
 * ```ts
 * const key = await unwrapOwnerEthereumKey('/var/lib/digicap/owner.json', sealer)
 * try { sign(key) } finally { key.fill(0) }
 * ```
 */
export async function unwrapOwnerEthereumKey(path: string, sealer: Sealer): Promise<Uint8Array> {
  const file = await readOwnerFile(path)
  if (!file) corrupt(path, 'missing')
  const key = await unwrapDataKey([file.ethereumPrivateKey], sealer)
  if (!isKeyOf(key, file.address)) {
    key.fill(0)
    corrupt(path, 'secret-mismatch')
  }
  return key
}

/** A 32-byte Ethereum private key whose address is `address` (any case). */
function isKeyOf(key: Uint8Array, address: string): boolean {
  return key.length === 32 && ethereumAddress(key).toLowerCase() === address.toLowerCase()
}

/**
 * Rewrites the owner file from the mnemonic for a new sealer (part of recovery).
 * Keeps `createdAt` of an existing readable file; rebuilds a corrupt or missing one.
 *
 * @throws {RecoveryKeyMismatchError} if the existing file belongs to another owner.
 */
export async function restoreOwner(
  options: InitOwnerOptions & { mnemonic: string },
): Promise<OwnerInfo> {
  const identity = await deriveOwnerIdentity(options.mnemonic, options.passphrase ?? '')
  try {
    const previous = await readOwnerFile(options.path).catch(() => undefined)
    if (previous && previous.address !== identity.address) {
      throw new RecoveryKeyMismatchError('The owner file belongs to another mnemonic', {
        details: { ownerAddress: previous.address, derivedAddress: identity.address },
      })
    }
    return await writeOwnerFile(options.path, identity, options.sealer, {
      replace: true,
      ...(previous ? { createdAt: previous.createdAt } : {}),
    })
  } finally {
    wipeOwnerIdentity(identity)
  }
}
