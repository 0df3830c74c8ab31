/**
 * The node's keys at start (ADR 0101): the wallet words are unsealed as before, and the keys they
 * derive (the account key and its address, the libp2p seed) are read from `node-keys.json`,
 * encrypted under a key only the words give (HKDF of their entropy, AES-256-GCM). Deriving them
 * is BIP-32 and secp256k1 in JavaScript, ~70–90 ms of every start on a cold JIT; decrypting them
 * is under a millisecond. The file is written at the first start that derives them, and any file
 * that does not decrypt under this node's words (another node's, damaged, an older format) is
 * ignored and written again: it can never give other keys than the words do.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Address, checksumAddress, type DigicapSigner } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import { privateKeyAccount } from '@digicap/contracts'
import {
  deriveOwnerIdentity,
  hostSealer,
  mnemonicEntropy,
  openNodeSecrets,
} from '@digicap/keyguard'
import { ExecutorStateError } from '../errors.ts'
import { type ExecutorNodeConfig, executorNodePaths } from './config.ts'

/**
 * The sealer of the node's secrets: the config's TPM, else the INSECURE software sealer. The key
 * is made only by `init` and by the first start of an older install (plain files, no
 * secrets.json yet); every other start needs the key and its record as init left them, so a
 * deleted, corrupt or swapped record is refused, never pinned anew (ADR 0029 amendment).
 */
export const sealerOf = (c: ExecutorNodeConfig, create: boolean) =>
  hostSealer({ dataDir: c.dataDir, tcti: c.tcti, createIfMissing: create })

/** The wallet words and receiver key, unsealed (an older install's plain files sealed first). */
export const readSecrets = (c: ExecutorNodeConfig) => {
  const paths = executorNodePaths(c.dataDir)
  const migrating = !existsSync(paths.secrets) && existsSync(paths.identity)
  return openNodeSecrets(paths, sealerOf(c, migrating))
}

/** The keys the sealed mnemonic derives (keyguard's scheme); the caller zeroes them. */
export async function readIdentity(config: ExecutorNodeConfig) {
  const { mnemonic, receiverKey } = await readSecrets(config)
  receiverKey.fill(0)
  const id = await deriveOwnerIdentity(mnemonic)
  for (const k of [id.recoveryKeyPair.privateKey, id.operatorPrivateKey]) k.fill(0)
  return id
}

/** What a node runs with. The two keys are secret: the caller zeroes them. */
export interface NodeKeys {
  /** The account's secp256k1 key (m/44'/60'/0'/0/0), 32 bytes. */
  ethereumPrivateKey: Uint8Array
  /** Its address (checksummed). */
  address: Address
  /** The seed of the libp2p identity (Ed25519), 32 bytes. */
  libp2pSeed: Uint8Array
}

/** The file beside the sealed secrets. */
export const nodeKeysFile = (dataDir: string) => join(dataDir, 'node-keys.json')

const KIND = 'digicap/node-keys'
const VERSION = 1
/** Bound into every encryption: a file of another kind or version never decrypts as this one. */
const AAD = new TextEncoder().encode(`${KIND}/v${VERSION}`)
const INFO = 'digicap/node-keys/v1'

/** The file's key: HKDF-SHA256 of the words' entropy (never stored). */
const fileKey = (mnemonic: string): Buffer => {
  const entropy = mnemonicEntropy(mnemonic)
  try {
    return Buffer.from(hkdfSync('sha256', entropy, new Uint8Array(0), INFO, 32))
  } finally {
    entropy.fill(0)
  }
}

/** The keys in `file`, or `undefined` for any file that is not this node's, whole. */
async function readKeysFile(file: string, key: Buffer): Promise<NodeKeys | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  // the decrypted bytes, zeroed whatever happens (they exist before the tag is checked)
  let plain: Buffer | undefined
  try {
    const doc = JSON.parse(text) as Record<string, unknown>
    if (doc.kind !== KIND || doc.version !== VERSION) return undefined
    if (typeof doc.nonce !== 'string' || typeof doc.ciphertext !== 'string') return undefined
    const nonce = Buffer.from(doc.nonce, 'base64')
    const sealed = Buffer.from(doc.ciphertext, 'base64')
    if (nonce.byteLength !== 12 || sealed.byteLength !== 32 + 32 + 20 + 16) return undefined
    const decipher = createDecipheriv('aes-256-gcm', key, nonce)
    decipher.setAAD(AAD)
    decipher.setAuthTag(sealed.subarray(-16))
    plain = decipher.update(sealed.subarray(0, -16))
    decipher.final() // throws unless the tag verifies (another node's words, any change)
    return {
      ethereumPrivateKey: Uint8Array.from(plain.subarray(0, 32)),
      libp2pSeed: Uint8Array.from(plain.subarray(32, 64)),
      address: checksumAddress(plain.subarray(64, 84)),
    }
  } catch {
    return undefined // not JSON, not base64, or the tag does not verify
  } finally {
    plain?.fill(0)
  }
}

async function writeKeysFile(file: string, key: Buffer, keys: NodeKeys): Promise<void> {
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(AAD)
  const plain = Buffer.concat([
    keys.ethereumPrivateKey,
    keys.libp2pSeed,
    Buffer.from(keys.address.slice(2), 'hex'),
  ])
  const sealed = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  plain.fill(0)
  const doc = {
    kind: KIND,
    version: VERSION,
    nonce: nonce.toString('base64'),
    ciphertext: sealed.toString('base64'),
  }
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`)
}

/**
 * Writes `node-keys.json` for `keys`, derived from `mnemonic` (`init` does, so that the first
 * start reads it too).
 */
export async function writeNodeKeys(
  dataDir: string,
  mnemonic: string,
  keys: NodeKeys,
): Promise<void> {
  const key = fileKey(mnemonic)
  try {
    await writeKeysFile(nodeKeysFile(dataDir), key, keys)
  } finally {
    key.fill(0)
  }
}

/**
 * The node's keys: unsealed words, then `node-keys.json` if it decrypts under them, else derived
 * (and the file written; a folder that cannot take it only costs the next start the derivation).
 * The caller zeroes both keys ({@link wipeNodeKeys}).
 */
export async function readNodeKeys(config: ExecutorNodeConfig): Promise<NodeKeys> {
  const { mnemonic, receiverKey } = await readSecrets(config)
  receiverKey.fill(0)
  const file = nodeKeysFile(config.dataDir)
  const key = fileKey(mnemonic)
  try {
    const kept = await readKeysFile(file, key)
    if (kept !== undefined) return kept
    const id = await deriveOwnerIdentity(mnemonic)
    for (const k of [id.recoveryKeyPair.privateKey, id.operatorPrivateKey]) k.fill(0)
    const keys = {
      ethereumPrivateKey: id.ethereumPrivateKey,
      address: id.address,
      libp2pSeed: id.libp2pSeed,
    }
    await writeKeysFile(file, key, keys).catch(() => {})
    return keys
  } finally {
    key.fill(0)
  }
}

/** Zeroes both keys. */
export function wipeNodeKeys(keys: NodeKeys): void {
  keys.ethereumPrivateKey.fill(0)
  keys.libp2pSeed.fill(0)
}

/**
 * The account of `keys` with its address known: nothing of secp256k1 runs until the first
 * signature (the first key-to-address computation is ~40 ms on a cold JIT), and that first
 * signature checks the key gives the address. Keeps its own copy of the key.
 * @throws {ExecutorStateError} at the first signature, for a key that is not the address's.
 */
export function knownAddressAccount(keys: NodeKeys): DigicapSigner {
  const key = Uint8Array.from(keys.ethereumPrivateKey)
  const { address } = keys
  let account: DigicapSigner | undefined
  const real = () => {
    if (account === undefined) {
      const made = privateKeyAccount(key)
      key.fill(0)
      if (made.address.toLowerCase() !== address.toLowerCase()) {
        throw new ExecutorStateError("The node's account key does not give its address", {
          details: { address, derived: made.address },
          hint: 'Delete node-keys.json in the data folder: the next start derives the keys again.',
        })
      }
      account = made
    }
    return account
  }
  return {
    address,
    signTypedData: async (typedData) => real().signTypedData(typedData),
    signTransaction: async (tx) => {
      const sign = real().signTransaction
      if (sign === undefined) throw new ExecutorStateError('This account cannot sign transactions')
      return sign(tx)
    },
  }
}
