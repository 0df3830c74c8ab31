/**
 * The owner's paper backup: a 24-word BIP-39 mnemonic from which the whole identity of a
 * keyguard is derived again.
 *
 * Derivation (version 1, fixed forever; a change gets a new `info` string):
 * ```
 * seed          = BIP-39 seed(mnemonic, passphrase)                   64 bytes (PBKDF2-HMAC-SHA512, 2048 rounds)
 * ethereum key  = BIP-32(seed) at m/44'/60'/0'/0/0                     secp256k1, address = keccak256(pub)[12:]
 * operator key  = BIP-32(seed) at m/44'/60'/0'/0/1                     secp256k1: the keyguard operator account
 * recovery key  = HKDF-SHA256(ikm = seed, salt = none, info = "digicap/recovery-x25519/v1", 32)   X25519 private key
 * libp2p seed   = HKDF-SHA256(ikm = seed, salt = none, info = "digicap/libp2p-ed25519/v1", 32)    Ed25519 seed
 * ```
 */
import {
  addressFromPrivateKey,
  InvalidArgumentError,
  type X25519KeyPair,
  x25519PublicKey,
} from '@digicap/capsule-core'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  generateMnemonic as bip39Generate,
  mnemonicToSeedWebcrypto,
  validateMnemonic,
} from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { InvalidMnemonicError } from '../errors.ts'
import { recoveryKeyId } from './recovery-key-id.ts'

/** BIP-44 path of the owner's Ethereum account. */
export const ETHEREUM_PATH = "m/44'/60'/0'/0/0"
/**
 * BIP-44 path of the keyguard operator account: the account that signs the keyguard's own
 * transactions (fast-path audit records), so they never race the owner's for a nonce.
 */
export const OPERATOR_PATH = "m/44'/60'/0'/0/1"
/** The parent of both accounts ({@link ETHEREUM_PATH} is its child 0, {@link OPERATOR_PATH} child 1). */
const ACCOUNTS_PATH = "m/44'/60'/0'/0"
/** HKDF `info` of the X25519 recovery key. */
export const RECOVERY_KEY_INFO = 'digicap/recovery-x25519/v1'
/** HKDF `info` of the libp2p Ed25519 identity seed. */
export const LIBP2P_SEED_INFO = 'digicap/libp2p-ed25519/v1'

/** Everything a keyguard derives from the mnemonic. Wipe it with {@link wipeOwnerIdentity}. */
export interface OwnerIdentity {
  /** secp256k1 private key of the owner's Ethereum account, 32 bytes. Secret. */
  ethereumPrivateKey: Uint8Array
  /** EIP-55 checksummed address of that account. */
  address: `0x${string}`
  /**
   * secp256k1 private key of the keyguard operator account (m/44'/60'/0'/0/1), 32 bytes.
   * Secret. The owner approves it with `CapsuleRegistry.setOperator`.
   */
  operatorPrivateKey: Uint8Array
  /** EIP-55 checksummed address of the operator account. */
  operatorAddress: `0x${string}`
  /** X25519 key pair every data key is also wrapped to. The private half is secret. */
  recoveryKeyPair: X25519KeyPair
  /** Lowercase hex SHA-256 of the recovery public key (the `keyId` of recovery wraps). */
  recoveryKeyId: string
  /** 32-byte Ed25519 seed of the node's libp2p identity. Secret. */
  libp2pSeed: Uint8Array
}

/**
 * Creates a fresh 24-word English BIP-39 mnemonic (256 bits of entropy).
 * Show it once for a paper backup; never store it.
 *
 * @example
 * ```ts
 * const words = generateMnemonic() // "abandon … art"
 * ```
 */
export function generateMnemonic(): string {
  return bip39Generate(wordlist, 256)
}

/**
 * Normalizes words typed from paper: NFKD, lowercase, single spaces.
 * @throws {InvalidMnemonicError} if the result is not a valid English BIP-39 mnemonic.
 */
export function normalizeMnemonic(mnemonic: string): string {
  if (typeof mnemonic !== 'string') {
    throw new InvalidMnemonicError('Mnemonic must be a string', {
      details: { got: typeof mnemonic },
    })
  }
  const words = mnemonic.normalize('NFKD').toLowerCase().trim().split(/\s+/)
  const normalized = words.join(' ')
  if (![12, 15, 18, 21, 24].includes(words.length) || !validateMnemonic(normalized, wordlist)) {
    throw new InvalidMnemonicError('Not a valid BIP-39 English mnemonic', {
      details: { words: words.length },
      hint: 'Check each word against the BIP-39 English list and the word order.',
    })
  }
  return normalized
}

const utf8 = (s: string) => new TextEncoder().encode(s)

/**
 * The Ethereum address of a secp256k1 private key (capsule-core's `addressFromPrivateKey`).
 *
 * @throws {InvalidArgumentError} for a key that is not 32 valid bytes.
 */
export function ethereumAddress(privateKey: Uint8Array): `0x${string}` {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) {
    throw new InvalidArgumentError('privateKey must be 32 bytes')
  }
  return addressFromPrivateKey(privateKey)
}

export { recoveryKeyId }

/**
 * Derives the owner's identity from the paper words (see the module comment for the scheme).
 *
 * @param passphrase - optional BIP-39 passphrase ("25th word"); default empty.
 * @throws {InvalidMnemonicError} for words that are not a valid mnemonic.
 * @example
 * ```ts
 * const id = await deriveOwnerIdentity(words)
 * console.log(id.address)
 * wipeOwnerIdentity(id)
 * ```
 */
export async function deriveOwnerIdentity(
  mnemonic: string,
  passphrase = '',
): Promise<OwnerIdentity> {
  const seed = await mnemonicToSeedWebcrypto(normalizeMnemonic(mnemonic), passphrase)
  try {
    // bip32 (and ripemd160) load only when a mnemonic is turned into keys (ADR 0051).
    const { HDKey } = await import('@scure/bip32')
    const root = HDKey.fromMasterSeed(seed)
    // Both accounts are children of m/44'/60'/0'/0: derived once, not once per path (every
    // BIP-32 node computes a secp256k1 public key: 7 nodes instead of 11, 5–8 ms of each start).
    const parent = root.derive(ACCOUNTS_PATH)
    root.wipePrivateData()
    const account = parent.deriveChild(0)
    const ethereumPrivateKey = Uint8Array.from(account.privateKey!)
    account.wipePrivateData()
    const operatorAccount = parent.deriveChild(1)
    const operatorPrivateKey = Uint8Array.from(operatorAccount.privateKey!)
    operatorAccount.wipePrivateData()
    parent.wipePrivateData()
    const recoveryPrivate = hkdf(sha256, seed, undefined, utf8(RECOVERY_KEY_INFO), 32)
    const recoveryPublic = x25519PublicKey(recoveryPrivate)
    return {
      ethereumPrivateKey,
      address: ethereumAddress(ethereumPrivateKey),
      operatorPrivateKey,
      operatorAddress: ethereumAddress(operatorPrivateKey),
      recoveryKeyPair: { privateKey: recoveryPrivate, publicKey: recoveryPublic },
      recoveryKeyId: recoveryKeyId(recoveryPublic),
      libp2pSeed: hkdf(sha256, seed, undefined, utf8(LIBP2P_SEED_INFO), 32),
    }
  } finally {
    seed.fill(0)
  }
}

/** Zeroes the secret parts of an {@link OwnerIdentity}. */
export function wipeOwnerIdentity(identity: OwnerIdentity): void {
  identity.ethereumPrivateKey.fill(0)
  identity.operatorPrivateKey.fill(0)
  identity.recoveryKeyPair.privateKey.fill(0)
  identity.libp2pSeed.fill(0)
}
