/**
 * JWE JSON serialization (RFC 7516 §7.2) as go-jose writes it for ocicrypt: one content key
 * for all recipients, A256GCM, flattened syntax with `alg`/`epk` in the protected header when
 * there is one recipient, general syntax (`recipients[]`, per-recipient `header`) otherwise.
 * Reading accepts both syntaxes, the algorithms ocicrypt accepts, and refuses `zip`, `crit`
 * and header names that appear in two places (RFC 7516 §7.2.1: they must be disjoint).
 */
import { type KeyObject, randomBytes } from 'node:crypto'
import { decodeBase64url, encodeBase64url } from '../encoding.ts'
import {
  OciFormatError,
  OciIntegrityError,
  OciKeyError,
  OciLimitError,
  OciUnsupportedError,
} from '../errors.ts'
import {
  CEK_LENGTH,
  CONTENT_ALGORITHMS,
  type ContentAlgorithm,
  decryptContent,
  encryptA256Gcm,
} from './content.ts'
import {
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  keyAlgorithmFor,
  keyFits,
  unwrapContentKey,
  wrapContentKey,
} from './key-management.ts'

/** Largest JWE accepted, in bytes of JSON. */
export const MAX_JWE_LENGTH = 256 * 1024
/** Most recipients one JWE may list. */
export const MAX_JWE_RECIPIENTS = 64

const encoder = new TextEncoder()

/** JSON with sorted object keys, as Go marshals a map (go-jose's headers are maps). */
function sortedJson(value: Record<string, unknown>): string {
  const keys = Object.keys(value).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(value[k])}`).join(',')}}`
}

/**
 * Encrypts `plaintext` to every public key (RSA → RSA-OAEP, EC → ECDH-ES+A256KW), A256GCM.
 * @example
 * ```ts
 * const jwe = encryptJwe(privateOptionsJson, [jwePublicKey(pem)])
 * ```
 */
export function encryptJwe(plaintext: Uint8Array, publicKeys: readonly KeyObject[]): string {
  if (publicKeys.length === 0 || publicKeys.length > MAX_JWE_RECIPIENTS) {
    throw new OciLimitError('A JWE needs 1..64 recipients', {
      details: { recipients: publicKeys.length },
    })
  }
  const cek = new Uint8Array(randomBytes(32))
  const recipients = publicKeys.map((key) => {
    const alg = keyAlgorithmFor(key)
    const { encryptedKey, header } = wrapContentKey(alg, key, cek)
    return { header: { alg, ...header }, encryptedKey }
  })
  const single = recipients.length === 1 ? recipients[0] : undefined
  const protectedHeader = encodeBase64url(
    encoder.encode(sortedJson({ enc: 'A256GCM', ...(single?.header ?? {}) })),
  )
  const { iv, ciphertext, tag } = encryptA256Gcm(cek, encoder.encode(protectedHeader), plaintext)
  cek.fill(0)
  const body: Record<string, unknown> = { protected: protectedHeader }
  if (single) {
    body.encrypted_key = encodeBase64url(single.encryptedKey)
  } else {
    body.recipients = recipients.map((r) => ({
      header: JSON.parse(sortedJson(r.header)),
      encrypted_key: encodeBase64url(r.encryptedKey),
    }))
  }
  body.iv = encodeBase64url(iv)
  body.ciphertext = encodeBase64url(ciphertext)
  body.tag = encodeBase64url(tag)
  return JSON.stringify(body)
}

function object(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OciFormatError(`JWE ${name} is not a JSON object`)
  }
  return value as Record<string, unknown>
}

function merge(...parts: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const part of parts) {
    for (const [k, v] of Object.entries(part)) {
      if (k in out) throw new OciFormatError('JWE header name appears twice', { details: { k } })
      out[k] = v
    }
  }
  return out
}

function parse(json: string | Uint8Array): Record<string, unknown> {
  const text = typeof json === 'string' ? json : new TextDecoder().decode(json)
  if (text.length > MAX_JWE_LENGTH) {
    throw new OciLimitError('JWE is too long', { details: { max: MAX_JWE_LENGTH } })
  }
  try {
    return object(JSON.parse(text), 'serialization')
  } catch (cause) {
    if (cause instanceof OciFormatError) throw cause
    throw new OciFormatError('JWE is not JSON', { cause })
  }
}

/**
 * Decrypts a JWE with the first private key that opens one of its recipients.
 *
 * @throws {OciFormatError} for a malformed JWE; {@link OciUnsupportedError} for `zip`, `crit`
 *   or an algorithm ocicrypt does not accept; {@link OciKeyError} when no key opens it;
 *   {@link OciIntegrityError} when a content key opens but the content does not authenticate.
 */
export function decryptJwe(
  json: string | Uint8Array,
  privateKeys: readonly KeyObject[],
): Uint8Array {
  const jwe = parse(json)
  if (typeof jwe.protected !== 'string') throw new OciFormatError('JWE has no protected header')
  const protectedHeader = object(
    (() => {
      try {
        return JSON.parse(new TextDecoder().decode(decodeBase64url(jwe.protected, 'protected')))
      } catch (cause) {
        if (cause instanceof OciFormatError) throw cause
        throw new OciFormatError('JWE protected header is not JSON', { cause })
      }
    })(),
    'protected header',
  )
  const unprotected = object(jwe.unprotected, 'unprotected header')
  const rawRecipients = Array.isArray(jwe.recipients)
    ? jwe.recipients
    : jwe.recipients === undefined
      ? [{ header: jwe.header, encrypted_key: jwe.encrypted_key }]
      : undefined
  if (!rawRecipients || rawRecipients.length === 0 || rawRecipients.length > MAX_JWE_RECIPIENTS) {
    throw new OciFormatError('JWE recipients must be a list of 1..64', {
      details: { recipients: Array.isArray(rawRecipients) ? rawRecipients.length : undefined },
    })
  }
  const parts = {
    iv: decodeBase64url(jwe.iv, 'iv'),
    ciphertext: decodeBase64url(jwe.ciphertext, 'ciphertext'),
    tag: decodeBase64url(jwe.tag, 'tag'),
  }
  // RFC 7516 §5.2 step 14: ASCII(BASE64URL(protected) ‖ '.' ‖ BASE64URL(aad)) when aad is given.
  if (jwe.aad !== undefined) decodeBase64url(jwe.aad, 'aad')
  const aad = encoder.encode(jwe.protected + (jwe.aad === undefined ? '' : `.${jwe.aad}`))
  let attempts = 0
  for (const raw of rawRecipients) {
    const recipient = object(raw, 'recipient')
    const header = merge(protectedHeader, unprotected, object(recipient.header, 'recipient header'))
    if (header.zip !== undefined || header.crit !== undefined) {
      throw new OciUnsupportedError('JWE uses zip or crit, which ocicrypt never writes', {
        details: { zip: header.zip !== undefined, crit: header.crit !== undefined },
      })
    }
    const alg = header.alg as KeyAlgorithm
    const enc = header.enc as ContentAlgorithm
    if (!KEY_ALGORITHMS.includes(alg) || !CONTENT_ALGORITHMS.includes(enc)) {
      throw new OciUnsupportedError('JWE algorithm not accepted', {
        details: { alg: String(header.alg).slice(0, 32), enc: String(header.enc).slice(0, 32) },
        hint: `Key: ${KEY_ALGORITHMS.join(', ')}. Content: ${CONTENT_ALGORITHMS.join(', ')}.`,
      })
    }
    const encryptedKey = decodeBase64url(recipient.encrypted_key, 'encrypted_key')
    for (const key of privateKeys) {
      if (!keyFits(alg, key, header)) continue
      attempts++
      let cek: Uint8Array
      try {
        cek = unwrapContentKey(alg, key, encryptedKey, header)
      } catch (cause) {
        if (cause instanceof OciFormatError) throw cause
        continue // not this key
      }
      if (cek.length !== CEK_LENGTH[enc]) continue
      try {
        return decryptContent(enc, cek, aad, parts)
      } catch (cause) {
        // RSA-OAEP with a wrong key fails in the unwrap; a content key that unwraps but does
        // not authenticate means the JWE was altered.
        if (!(cause instanceof OciIntegrityError)) throw cause
        if (rawRecipients.length === 1 && privateKeys.length === 1) throw cause
      } finally {
        cek.fill(0)
      }
    }
  }
  throw new OciKeyError('No private key opens this JWE', {
    details: { recipients: rawRecipients.length, keys: privateKeys.length, attempts },
    hint: 'Pass the private key whose public key the image was encrypted to.',
  })
}
