/**
 * JWE content encryption (RFC 7518 §5): AES-GCM (A128GCM, A192GCM, A256GCM; ocicrypt writes
 * A256GCM) and AES-CBC + HMAC-SHA2 (A128CBC-HS256, A192CBC-HS384, A256CBC-HS512), all of
 * which ocicrypt accepts on decryption.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'
import { OciIntegrityError } from '../errors.ts'

export const CONTENT_ALGORITHMS = [
  'A128GCM',
  'A192GCM',
  'A256GCM',
  'A128CBC-HS256',
  'A192CBC-HS384',
  'A256CBC-HS512',
] as const
export type ContentAlgorithm = (typeof CONTENT_ALGORITHMS)[number]

/** Content key length of each algorithm, in bytes. */
export const CEK_LENGTH: Record<ContentAlgorithm, number> = {
  A128GCM: 16,
  A192GCM: 24,
  A256GCM: 32,
  'A128CBC-HS256': 32,
  'A192CBC-HS384': 48,
  'A256CBC-HS512': 64,
}

export interface ContentCiphertext {
  iv: Uint8Array
  ciphertext: Uint8Array
  tag: Uint8Array
}

/** Encrypts with A256GCM (the only algorithm ocicrypt writes). */
export function encryptA256Gcm(
  cek: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): ContentCiphertext {
  const iv = new Uint8Array(randomBytes(12))
  const cipher = createCipheriv('aes-256-gcm', cek, iv)
  cipher.setAAD(aad)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { iv, ciphertext: new Uint8Array(ciphertext), tag: new Uint8Array(cipher.getAuthTag()) }
}

function cbcHmac(enc: ContentAlgorithm) {
  const bits = Number(enc.slice(1, 4))
  return { keyBytes: bits / 8, hash: `sha${bits * 2}`, cipher: `aes-${bits}-cbc` }
}

/**
 * Decrypts and authenticates.
 * @throws {OciIntegrityError} (`reason: 'jwe-tag'`) when the tag does not match.
 */
export function decryptContent(
  enc: ContentAlgorithm,
  cek: Uint8Array,
  aad: Uint8Array,
  { iv, ciphertext, tag }: ContentCiphertext,
): Uint8Array {
  const fail = (cause?: unknown) =>
    new OciIntegrityError('JWE content does not authenticate', {
      cause,
      details: { reason: 'jwe-tag', enc },
    })
  if (enc.endsWith('GCM')) {
    if (iv.length !== 12 || tag.length !== 16) throw fail()
    try {
      const decipher = createDecipheriv(`aes-${cek.length * 8}-gcm` as 'aes-256-gcm', cek, iv)
      decipher.setAAD(aad)
      decipher.setAuthTag(tag)
      return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]))
    } catch (cause) {
      throw fail(cause)
    }
  }
  const { keyBytes, hash, cipher } = cbcHmac(enc)
  const al = Buffer.alloc(8)
  al.writeBigUInt64BE(BigInt(aad.length) * 8n, 0)
  const mac = createHmac(hash, cek.subarray(0, keyBytes))
    .update(aad)
    .update(iv)
    .update(ciphertext)
    .update(al)
    .digest()
    .subarray(0, keyBytes)
  if (iv.length !== 16 || tag.length !== keyBytes || !timingSafeEqual(mac, tag)) throw fail()
  try {
    const decipher = createDecipheriv(cipher, cek.subarray(keyBytes), iv)
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]))
  } catch (cause) {
    throw fail(cause)
  }
}
