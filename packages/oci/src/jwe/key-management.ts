/**
 * JWE key management (RFC 7518 §4): RSA-OAEP (SHA-1, what ocicrypt writes for RSA keys),
 * RSA-OAEP-256, and ECDH-ES+A128KW/A192KW/A256KW (what it writes for EC keys: A256KW),
 * with AES Key Wrap (RFC 3394) from node:crypto.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
} from 'node:crypto'
import { decodeBase64url } from '../encoding.ts'
import { OciFormatError, OciUnsupportedError } from '../errors.ts'
import { concatKdf } from './concat-kdf.ts'
import { ecCurve } from './keys.ts'

/** The key management algorithms ocicrypt accepts on decryption (`UnwrapKey`). */
export const KEY_ALGORITHMS = [
  'RSA-OAEP',
  'RSA-OAEP-256',
  'ECDH-ES+A128KW',
  'ECDH-ES+A192KW',
  'ECDH-ES+A256KW',
] as const
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number]

/** RFC 3394's default initial value. */
const AES_KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex')
const KW_BYTES: Record<string, number> = {
  'ECDH-ES+A128KW': 16,
  'ECDH-ES+A192KW': 24,
  'ECDH-ES+A256KW': 32,
}

/** The algorithm ocicrypt picks for a public key. */
export function keyAlgorithmFor(key: KeyObject): KeyAlgorithm {
  return key.asymmetricKeyType === 'rsa' ? 'RSA-OAEP' : 'ECDH-ES+A256KW'
}

/** Header fields a recipient adds (`epk` for ECDH-ES). */
export type RecipientHeader = Record<string, unknown>

function ecdhKek(
  algorithm: string,
  privateKey: KeyObject,
  publicKey: KeyObject,
  header: RecipientHeader,
): Uint8Array {
  const apu = header.apu === undefined ? undefined : decodeBase64url(header.apu, 'apu')
  const apv = header.apv === undefined ? undefined : decodeBase64url(header.apv, 'apv')
  const z = diffieHellman({ privateKey, publicKey })
  return concatKdf(z, algorithm, KW_BYTES[algorithm] ?? 32, apu, apv)
}

/** Wraps a content key to one public key: the encrypted key and the header fields to add. */
export function wrapContentKey(
  algorithm: KeyAlgorithm,
  publicKey: KeyObject,
  cek: Uint8Array,
): { encryptedKey: Uint8Array; header: RecipientHeader } {
  if (algorithm === 'RSA-OAEP' || algorithm === 'RSA-OAEP-256') {
    const encryptedKey = publicEncrypt(
      {
        key: publicKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: algorithm === 'RSA-OAEP' ? 'sha1' : 'sha256',
      },
      cek,
    )
    return { encryptedKey: new Uint8Array(encryptedKey), header: {} }
  }
  const curve = ecCurve(publicKey)
  if (!curve) throw new OciUnsupportedError('ECDH-ES needs an EC public key')
  const ephemeral = generateKeyPairSync('ec', {
    namedCurve: publicKey.asymmetricKeyDetails?.namedCurve ?? '',
  })
  const kek = ecdhKek(algorithm, ephemeral.privateKey, publicKey, {})
  const jwk = ephemeral.publicKey.export({ format: 'jwk' })
  const wrap = createCipheriv(`id-aes${kek.length * 8}-wrap`, kek, AES_KW_IV)
  const encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()])
  return {
    encryptedKey: new Uint8Array(encryptedKey),
    header: { epk: { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } },
  }
}

function ephemeralKey(epk: unknown, privateKey: KeyObject): KeyObject {
  const curve = ecCurve(privateKey)
  const e = epk as Record<string, unknown> | null
  if (
    typeof e !== 'object' ||
    e === null ||
    e.kty !== 'EC' ||
    e.crv !== curve?.crv ||
    typeof e.x !== 'string' ||
    typeof e.y !== 'string' ||
    !curve
  ) {
    throw new OciFormatError('JWE epk is not an EC key on the recipient key curve')
  }
  try {
    // OpenSSL refuses a point that is not on the curve (invalid-curve attacks).
    return createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: e.x, y: e.y }, format: 'jwk' })
  } catch (cause) {
    throw new OciFormatError('JWE epk is not a valid point', { cause })
  }
}

/**
 * Unwraps a content key with one private key.
 * @throws {OciFormatError} for a bad `epk`; node:crypto errors when the key does not fit.
 */
export function unwrapContentKey(
  algorithm: KeyAlgorithm,
  privateKey: KeyObject,
  encryptedKey: Uint8Array,
  header: RecipientHeader,
): Uint8Array {
  if (algorithm === 'RSA-OAEP' || algorithm === 'RSA-OAEP-256') {
    return new Uint8Array(
      privateDecrypt(
        {
          key: privateKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: algorithm === 'RSA-OAEP' ? 'sha1' : 'sha256',
        },
        encryptedKey,
      ),
    )
  }
  const kek = ecdhKek(algorithm, privateKey, ephemeralKey(header.epk, privateKey), header)
  const unwrap = createDecipheriv(`id-aes${kek.length * 8}-wrap`, kek, AES_KW_IV)
  return new Uint8Array(Buffer.concat([unwrap.update(encryptedKey), unwrap.final()]))
}

/** Whether a private key can be used with an algorithm at all (saves a doomed attempt). */
export function keyFits(algorithm: KeyAlgorithm, key: KeyObject, header: RecipientHeader): boolean {
  if (algorithm.startsWith('RSA')) return key.asymmetricKeyType === 'rsa'
  const curve = ecCurve(key)?.crv
  const epkCurve = (header.epk as { crv?: unknown } | undefined)?.crv
  // A key on another curve than the sender's ephemeral key is simply not this recipient's.
  return curve !== undefined && (typeof epkCurve !== 'string' || epkCurve === curve)
}
