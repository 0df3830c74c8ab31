/**
 * ocicrypt's layer options (containers/ocicrypt `blockcipher/blockcipher.go`), as the JSON Go
 * writes: `[]byte` as padded base64, map keys sorted, fields in declaration order.
 *
 * - private (wrapped per recipient): `{"symkey","digest","cipheroptions":{"nonce"}}`
 * - public (`org.opencontainers.image.enc.pubopts`): `{"cipher","hmac","cipheroptions":{}}`
 *
 * Parsing is strict about what it uses (types, lengths, digest syntax) and ignores unknown
 * fields, as Go's `json.Unmarshal` does, so a newer ocicrypt's extra fields do not break it.
 */
import { checkDigest, decodeBase64, encodeBase64, type Sha256Digest } from '../encoding.ts'
import { OciFormatError, OciLimitError, OciUnsupportedError } from '../errors.ts'

/** The one cipher ocicrypt defines. */
export const CIPHER_AES_256_CTR_HMAC_SHA256 = 'AES_256_CTR_HMAC_SHA256'
/** AES-256 key, also the HMAC-SHA256 key (as in ocicrypt). */
export const SYMMETRIC_KEY_LENGTH = 32
/** The CTR initial counter block. */
export const NONCE_LENGTH = 16
/** HMAC-SHA256 output. */
export const HMAC_LENGTH = 32
/** Largest options JSON accepted (real ones are ~200 bytes). */
export const MAX_OPTIONS_JSON_LENGTH = 64 * 1024

/** What a recipient needs to decrypt a layer. Zero `symmetricKey` when done. */
export interface PrivateLayerOptions {
  symmetricKey: Uint8Array
  /** Digest of the plain layer blob (what the manifest listed before encryption). */
  digest: Sha256Digest
  /** `nonce`: the 16-byte CTR counter block. */
  nonce: Uint8Array
}

/** What anyone may see: the cipher and the HMAC of the ciphertext. */
export interface PublicLayerOptions {
  cipher: typeof CIPHER_AES_256_CTR_HMAC_SHA256
  hmac: Uint8Array
}

const encoder = new TextEncoder()

/** The private options as ocicrypt writes them (the bytes each recipient wraps). */
export function encodePrivateOptions(options: PrivateLayerOptions): Uint8Array {
  return encoder.encode(
    `{"symkey":${JSON.stringify(encodeBase64(options.symmetricKey))},"digest":${JSON.stringify(options.digest)},"cipheroptions":{"nonce":${JSON.stringify(encodeBase64(options.nonce))}}}`,
  )
}

/** The public options as ocicrypt writes them (then base64 in the pubopts annotation). */
export function encodePublicOptions(options: PublicLayerOptions): Uint8Array {
  return encoder.encode(
    `{"cipher":${JSON.stringify(options.cipher)},"hmac":${JSON.stringify(encodeBase64(options.hmac))},"cipheroptions":{}}`,
  )
}

function parseObject(bytes: Uint8Array, name: string): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) {
    throw new OciFormatError(`${name} must be bytes`)
  }
  if (bytes.length > MAX_OPTIONS_JSON_LENGTH) {
    throw new OciLimitError(`${name} are too long`, {
      details: { length: bytes.length, max: MAX_OPTIONS_JSON_LENGTH },
    })
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    throw new OciFormatError(`${name} are not JSON`, { cause })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OciFormatError(`${name} are not a JSON object`)
  }
  return value as Record<string, unknown>
}

function cipherOptions(value: unknown, name: string): Record<string, unknown> {
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new OciFormatError(`${name}.cipheroptions is not an object`)
  }
  return value as Record<string, unknown>
}

function exactBytes(value: unknown, name: string, length: number): Uint8Array {
  const bytes = decodeBase64(value, name)
  if (bytes.length !== length) {
    throw new OciFormatError(`${name} has the wrong length`, {
      details: { name, length: bytes.length, expected: length },
    })
  }
  return bytes
}

/**
 * Parses unwrapped private options.
 * @throws {OciFormatError} for bad JSON, a key that is not 32 bytes, a nonce that is not 16,
 *   or a digest that is not `sha256:<hex>`.
 */
export function decodePrivateOptions(bytes: Uint8Array): PrivateLayerOptions {
  const o = parseObject(bytes, 'private layer options')
  const nonce = cipherOptions(o.cipheroptions, 'private layer options').nonce
  return {
    symmetricKey: exactBytes(o.symkey, 'symkey', SYMMETRIC_KEY_LENGTH),
    digest: checkDigest(o.digest, 'private layer options digest'),
    nonce: exactBytes(nonce, 'cipheroptions.nonce', NONCE_LENGTH),
  }
}

/**
 * Parses public options (the decoded pubopts annotation).
 * @throws {OciUnsupportedError} for a cipher other than AES_256_CTR_HMAC_SHA256.
 * @throws {OciFormatError} for bad JSON or an HMAC that is not 32 bytes.
 */
export function decodePublicOptions(bytes: Uint8Array): PublicLayerOptions {
  const o = parseObject(bytes, 'public layer options')
  if (o.cipher !== CIPHER_AES_256_CTR_HMAC_SHA256) {
    throw new OciUnsupportedError('Unsupported layer cipher', {
      details: { cipher: typeof o.cipher === 'string' ? o.cipher.slice(0, 64) : typeof o.cipher },
      hint: `ocicrypt defines only ${CIPHER_AES_256_CTR_HMAC_SHA256}.`,
    })
  }
  // ocicrypt reads the nonce from the public options first, where no HMAC covers it; the only
  // writer leaves them empty, so anything there is refused rather than used.
  if (Object.keys(cipherOptions(o.cipheroptions, 'public layer options')).length > 0) {
    throw new OciFormatError('Public layer options carry cipher options', {
      hint: 'ocicrypt writes an empty public cipheroptions; the nonce belongs to the private options.',
    })
  }
  return { cipher: CIPHER_AES_256_CTR_HMAC_SHA256, hmac: exactBytes(o.hmac, 'hmac', HMAC_LENGTH) }
}
