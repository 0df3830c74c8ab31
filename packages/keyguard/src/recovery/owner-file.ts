/**
 * Reading the owner file (`owner.json`): its public parts and wrapped secrets, checked. Apart
 * from `owner.ts` so that a command that only reads it (`pi-node status`) loads neither the
 * mnemonic code nor the curves nor capsule-core's codecs (`@digicap/keyguard/files`, ADR 0051).
 */
import { hexToBytes } from '@noble/hashes/utils.js'
import { checkDate, checkKeys, corrupt, parseWrappedKey, readJsonFile } from '../store/json-file.ts'
import type { WrappedKey } from '../types.ts'
import { recoveryKeyId } from './recovery-key-id.ts'

/** The public face of the owner, as stored in the owner file. */
export interface OwnerInfo {
  address: `0x${string}`
  /** The keyguard operator account; absent in a version-1 owner file. */
  operatorAddress?: `0x${string}`
  recoveryPublicKey: Uint8Array
  recoveryKeyId: string
  /** Raw 32-byte Ed25519 public key of the node's libp2p identity. */
  libp2pPublicKey: Uint8Array
  createdAt: string
}

/** The owner file as read: the public parts and the wrapped secrets. */
export interface OwnerFile extends OwnerInfo {
  ethereumPrivateKey: WrappedKey
  operatorPrivateKey?: WrappedKey
  libp2pSeed: WrappedKey
}

const V1_KEYS = [
  'version',
  'address',
  'recoveryPublicKey',
  'libp2pPublicKey',
  'createdAt',
  'ethereumPrivateKey',
  'libp2pSeed',
]
const V2_KEYS = [...V1_KEYS, 'operatorAddress', 'operatorPrivateKey']
const ADDRESS = /^0x[0-9a-fA-F]{40}$/

/**
 * Reads and checks the owner file; `undefined` if there is none.
 * @throws {KeyStoreCorruptError} for a corrupt owner file.
 */
export async function readOwnerFile(path: string): Promise<OwnerFile | undefined> {
  const obj = await readJsonFile(path)
  if (obj === undefined) return undefined
  if (obj.version !== 1 && obj.version !== 2) {
    corrupt(path, 'unknown-version', { version: obj.version })
  }
  checkKeys(path, obj, obj.version === 1 ? V1_KEYS : V2_KEYS)
  const hex32 = (field: string) => {
    const v = obj[field]
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) corrupt(path, 'bad-field', { field })
    return hexToBytes(v)
  }
  if (typeof obj.address !== 'string' || !ADDRESS.test(obj.address)) {
    corrupt(path, 'bad-field', { field: 'address' })
  }
  if (
    obj.version === 2 &&
    (typeof obj.operatorAddress !== 'string' || !ADDRESS.test(obj.operatorAddress))
  ) {
    corrupt(path, 'bad-field', { field: 'operatorAddress' })
  }
  const recoveryPublicKey = hex32('recoveryPublicKey')
  return {
    address: obj.address as `0x${string}`,
    ...(obj.version === 2 ? { operatorAddress: obj.operatorAddress as `0x${string}` } : {}),
    recoveryPublicKey,
    recoveryKeyId: recoveryKeyId(recoveryPublicKey),
    libp2pPublicKey: hex32('libp2pPublicKey'),
    createdAt: checkDate(path, 'createdAt', obj.createdAt),
    ethereumPrivateKey: parseWrappedKey(path, 'ethereumPrivateKey', obj.ethereumPrivateKey),
    ...(obj.version === 2
      ? {
          operatorPrivateKey: parseWrappedKey(path, 'operatorPrivateKey', obj.operatorPrivateKey),
        }
      : {}),
    libp2pSeed: parseWrappedKey(path, 'libp2pSeed', obj.libp2pSeed),
  }
}

/**
 * Reads the public parts of the owner file; `undefined` if the keyguard was never initialised.
 * @throws {KeyStoreCorruptError} for a corrupt owner file.
 */
export async function readOwner(path: string): Promise<OwnerInfo | undefined> {
  const file = await readOwnerFile(path)
  if (!file) return undefined
  const { ethereumPrivateKey: _e, operatorPrivateKey: _o, libp2pSeed: _l, ...info } = file
  return info
}
