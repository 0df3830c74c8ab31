/**
 * RSA-OAEP-SHA256 wrapping in software from a public key (shared by both RSA sealers, and
 * usable on a laptop that holds only the keyguard's public key). The OAEP label is empty:
 * Node's default, and what `tpm2_rsadecrypt` uses when no `-l` is given.
 */
import { constants, createPublicKey, type KeyObject, publicEncrypt } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core/light'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { WrappedKey, WrapScheme } from '../types.ts'
import type { SealerPublicKey } from './sealer.ts'

/** RSA modulus size of every keyguard RSA key. */
export const RSA_BITS = 2048
/** Longest data key RSA-OAEP-SHA256 with a 2048-bit key can carry: 256 - 2*32 - 2. */
export const RSA_OAEP_MAX_PLAINTEXT = 190
/** Length of an RSA-2048 ciphertext. */
export const RSA_CIPHERTEXT_LENGTH = 256

/**
 * Builds a {@link SealerPublicKey} from a PEM or DER SubjectPublicKeyInfo.
 * @throws {InvalidArgumentError} if it is not an RSA-2048 public key.
 */
export function rsaPublicKey(scheme: WrapScheme, spki: string | Uint8Array): SealerPublicKey {
  let key: KeyObject
  try {
    key =
      typeof spki === 'string'
        ? createPublicKey({ key: spki, format: 'pem' })
        : createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
  } catch (cause) {
    throw new InvalidArgumentError('Public key is not a valid SubjectPublicKeyInfo', { cause })
  }
  const bits = key.asymmetricKeyDetails?.modulusLength
  if (key.asymmetricKeyType !== 'rsa' || bits !== RSA_BITS) {
    throw new InvalidArgumentError('Public key must be RSA-2048', {
      details: { type: key.asymmetricKeyType, bits },
    })
  }
  const der = new Uint8Array(key.export({ type: 'spki', format: 'der' }))
  return {
    scheme,
    keyId: bytesToHex(sha256(der)),
    pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    spkiDer: der,
  }
}

/** Checks a data key's type and length before wrapping. */
export function checkDataKey(dataKey: unknown): asserts dataKey is Uint8Array {
  if (!(dataKey instanceof Uint8Array)) {
    throw new InvalidArgumentError('dataKey must be a Uint8Array', {
      details: { got: typeof dataKey },
    })
  }
  if (dataKey.length === 0 || dataKey.length > RSA_OAEP_MAX_PLAINTEXT) {
    throw new InvalidArgumentError('dataKey length is out of range', {
      details: { length: dataKey.length, min: 1, max: RSA_OAEP_MAX_PLAINTEXT },
    })
  }
}

/**
 * Wraps `dataKey` to an RSA public key with RSA-OAEP-SHA256 (MGF1-SHA256, empty label).
 *
 * @throws {InvalidArgumentError} for a data key that is empty or longer than 190 bytes.
 * @example
 * ```ts
 * const pub = rsaPublicKey('tpm2-rsa-oaep-sha256', pemFromThePi)
 * const wrapped = wrapWithPublicKey(pub, dataKey)
 * ```
 */
export function wrapWithPublicKey(publicKey: SealerPublicKey, dataKey: Uint8Array): WrappedKey {
  checkDataKey(dataKey)
  const ciphertext = publicEncrypt(
    { key: publicKey.pem, oaepHash: 'sha256', padding: constants.RSA_PKCS1_OAEP_PADDING },
    dataKey,
  )
  return {
    scheme: publicKey.scheme,
    keyId: publicKey.keyId,
    ciphertext: new Uint8Array(ciphertext),
  }
}
