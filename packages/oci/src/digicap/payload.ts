/**
 * The Digicap recipient's payload (SPEC.md §3): JSON naming the capsule, carrying the capsule
 * data key as the keyguard wrapped it, and the layer's private options sealed under a key
 * derived from that data key.
 *
 *   {"v":1,"capsule":"0x…32 bytes","wrappedKeys":[{"scheme","keyId","ciphertext":b64}],
 *    "nonce":b64(12),"ciphertext":b64(AES-256-GCM(optionsKey, nonce, options, aad) ‖ tag)}
 *
 *   optionsKey = HKDF-SHA256(ikm = data key, salt = capsule id, info = LABEL, 32)
 *   aad        = LABEL ‖ capsule id
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import {
  checkWrappedKey,
  type Hex,
  hexToBytes,
  InvalidArgumentError,
  toHex,
  type WrappedKey,
} from '@digicap/capsule-core'
import { decodeBase64, encodeBase64 } from '../encoding.ts'
import { OciFormatError, OciIntegrityError, OciLimitError } from '../errors.ts'

/** HKDF info of the layer-options key, and the AAD prefix. */
export const DIGICAP_OPTIONS_LABEL = 'digicap/oci/v1 layer options'
/** The payload version this package writes and reads. */
export const DIGICAP_PAYLOAD_VERSION = 1
/** Largest payload read (real ones are under 2 KiB). */
export const MAX_DIGICAP_PAYLOAD_LENGTH = 16 * 1024
/** Most wrapped copies of the data key a payload may carry. */
export const MAX_DIGICAP_WRAPPED_KEYS = 8

const encoder = new TextEncoder()

/** A parsed payload; `sealed` is `ciphertext ‖ tag`. */
export interface DigicapPayload {
  capsuleId: Hex
  wrappedKeys: WrappedKey[]
  nonce: Uint8Array
  sealed: Uint8Array
}

function optionsKey(dataKey: Uint8Array, capsuleId: Uint8Array): Buffer {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== 32) {
    throw new InvalidArgumentError('dataKey must be 32 bytes')
  }
  return Buffer.from(hkdfSync('sha256', dataKey, capsuleId, DIGICAP_OPTIONS_LABEL, 32))
}

function aad(capsuleId: Uint8Array): Buffer {
  return Buffer.concat([encoder.encode(DIGICAP_OPTIONS_LABEL), capsuleId])
}

/** Seals private options into a payload. */
export function sealDigicapPayload(
  privateOptions: Uint8Array,
  capsule: { capsuleId: Hex; dataKey: Uint8Array; wrappedKeys: readonly WrappedKey[] },
  nonce: Uint8Array = new Uint8Array(randomBytes(12)),
): Uint8Array {
  const id = hexToBytes(capsule.capsuleId, { length: 32, name: 'capsuleId' })
  const key = optionsKey(capsule.dataKey, id)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad(id))
  const sealed = Buffer.concat([cipher.update(privateOptions), cipher.final(), cipher.getAuthTag()])
  key.fill(0)
  return encoder.encode(
    JSON.stringify({
      v: DIGICAP_PAYLOAD_VERSION,
      capsule: toHex(id),
      wrappedKeys: capsule.wrappedKeys.map((w) => ({
        scheme: w.scheme,
        keyId: w.keyId,
        ciphertext: encodeBase64(w.ciphertext),
      })),
      nonce: encodeBase64(nonce),
      ciphertext: encodeBase64(sealed),
    }),
  )
}

/**
 * Parses a payload (not yet opened).
 * @throws {OciFormatError} for anything but the documented shape; {@link OciLimitError} when too long.
 */
export function parseDigicapPayload(bytes: Uint8Array): DigicapPayload {
  if (bytes.length > MAX_DIGICAP_PAYLOAD_LENGTH) {
    throw new OciLimitError('Digicap payload is too long', {
      details: { length: bytes.length, max: MAX_DIGICAP_PAYLOAD_LENGTH },
    })
  }
  let o: Record<string, unknown>
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    throw new OciFormatError('Digicap payload is not JSON', { cause })
  }
  if (typeof o !== 'object' || o === null || o.v !== DIGICAP_PAYLOAD_VERSION) {
    throw new OciFormatError('Digicap payload has an unknown version', {
      details: { v: typeof o === 'object' && o !== null ? String(o.v).slice(0, 16) : typeof o },
    })
  }
  const keys = Object.keys(o).sort().join(',')
  if (keys !== 'capsule,ciphertext,nonce,v,wrappedKeys') {
    throw new OciFormatError('Digicap payload fields differ from version 1', { details: { keys } })
  }
  if (
    !Array.isArray(o.wrappedKeys) ||
    o.wrappedKeys.length === 0 ||
    o.wrappedKeys.length > MAX_DIGICAP_WRAPPED_KEYS
  ) {
    throw new OciFormatError('Digicap payload needs 1..8 wrapped keys')
  }
  try {
    const capsuleId = toHex(hexToBytes(String(o.capsule), { length: 32, name: 'capsule' }))
    const wrappedKeys = o.wrappedKeys.map((w: Record<string, unknown>, i: number) => {
      const key = {
        scheme: w?.scheme,
        keyId: w?.keyId,
        ciphertext: decodeBase64(w?.ciphertext, `wrappedKeys[${i}].ciphertext`),
      } as WrappedKey
      checkWrappedKey(key, `wrappedKeys[${i}]`)
      return key
    })
    const nonce = decodeBase64(o.nonce, 'nonce')
    const sealed = decodeBase64(o.ciphertext, 'ciphertext')
    if (nonce.length !== 12 || sealed.length < 16) {
      throw new OciFormatError('Digicap payload nonce or ciphertext has the wrong length')
    }
    return { capsuleId, wrappedKeys, nonce, sealed }
  } catch (cause) {
    if (cause instanceof OciFormatError) throw cause
    throw new OciFormatError('Digicap payload field is malformed', { cause })
  }
}

/**
 * Opens a payload's sealed options with the capsule's data key.
 * @throws {OciIntegrityError} (`reason: 'digicap-tag'`) for a wrong key or altered payload.
 */
export function openDigicapPayload(payload: DigicapPayload, dataKey: Uint8Array): Uint8Array {
  const id = hexToBytes(payload.capsuleId, { length: 32 })
  const key = optionsKey(dataKey, id)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, payload.nonce)
    decipher.setAAD(aad(id))
    decipher.setAuthTag(payload.sealed.subarray(payload.sealed.length - 16))
    return new Uint8Array(
      Buffer.concat([
        decipher.update(payload.sealed.subarray(0, payload.sealed.length - 16)),
        decipher.final(),
      ]),
    )
  } catch (cause) {
    throw new OciIntegrityError('Digicap payload does not open with this data key', {
      cause,
      details: { reason: 'digicap-tag', capsule: payload.capsuleId },
    })
  } finally {
    key.fill(0)
  }
}
