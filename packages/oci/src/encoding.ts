/**
 * Strict base64 and digest parsing. Go's `encoding/json` writes `[]byte` as padded standard
 * base64 and ocicrypt joins annotation values with `,`; JWE uses unpadded base64url. Node's
 * `Buffer.from(…, 'base64')` skips bad characters silently, so every decode here re-encodes
 * and compares: one string stands for one byte string.
 */
import { OciFormatError } from './errors.ts'

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/

/** Decodes padded standard base64 (Go's `base64.StdEncoding`). */
export function decodeBase64(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64_RE.test(value)) {
    throw new OciFormatError(`${name} is not standard base64`, { details: { name } })
  }
  const bytes = Buffer.from(value, 'base64')
  if (bytes.toString('base64') !== value) {
    throw new OciFormatError(`${name} is not canonical base64`, { details: { name } })
  }
  return new Uint8Array(bytes)
}

/** Encodes as padded standard base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** Decodes unpadded base64url (RFC 7515 §2). */
export function decodeBase64url(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64URL_RE.test(value) || value.length % 4 === 1) {
    throw new OciFormatError(`${name} is not base64url`, { details: { name } })
  }
  const bytes = Buffer.from(value, 'base64url')
  if (bytes.toString('base64url') !== value) {
    throw new OciFormatError(`${name} is not canonical base64url`, { details: { name } })
  }
  return new Uint8Array(bytes)
}

/** Encodes as unpadded base64url. */
export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/** An OCI content digest of the one algorithm this package writes and reads. */
export type Sha256Digest = `sha256:${string}`

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/

/** Whether a value is a `sha256:<64 lowercase hex>` digest. */
export function isSha256Digest(value: unknown): value is Sha256Digest {
  return typeof value === 'string' && DIGEST_RE.test(value)
}

/**
 * Checks a digest string.
 * @throws {OciFormatError} for anything but `sha256:<64 lowercase hex>`.
 */
export function checkDigest(value: unknown, name: string): Sha256Digest {
  if (!isSha256Digest(value)) {
    throw new OciFormatError(`${name} is not a sha256 digest`, {
      details: { name, value: typeof value === 'string' ? value.slice(0, 80) : typeof value },
    })
  }
  return value
}

/** `sha256:<hex>` of a finished SHA-256 hash output. */
export function digestOf(hashBytes: Uint8Array): Sha256Digest {
  return `sha256:${Buffer.from(hashBytes).toString('hex')}`
}
