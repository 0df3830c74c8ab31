/**
 * Layer options ⇄ descriptor annotations, as ocicrypt's `EncryptLayer` / `decryptLayerKeyOptsData`:
 * one `…enc.keys.<protocol>` annotation per protocol (base64 payloads joined with `,`) and
 * `…enc.pubopts` (base64 of the public options JSON).
 */
import { DigicapError } from '@digicap/capsule-core'
import {
  decodePrivateOptions,
  decodePublicOptions,
  encodePrivateOptions,
  encodePublicOptions,
  type PrivateLayerOptions,
  type PublicLayerOptions,
} from '../cipher/layer-options.ts'
import { decodeBase64, encodeBase64 } from '../encoding.ts'
import { OciFormatError, OciKeyError, OciLimitError } from '../errors.ts'
import { ANNOTATION_PUBOPTS, keysAnnotation } from '../media-types.ts'
import type { LayerRecipient, LayerUnwrapper } from './recipient.ts'

/** Longest recipient annotation value read, in characters. */
export const MAX_KEYS_ANNOTATION_LENGTH = 1024 * 1024
/** Most wrapped copies one protocol's annotation may hold. */
export const MAX_WRAPS_PER_PROTOCOL = 64

/**
 * Wraps the private options to every recipient and returns the annotations to add.
 * @throws {OciLimitError} with no recipient.
 */
export async function encryptionAnnotations(
  options: { private: PrivateLayerOptions; public: PublicLayerOptions },
  recipients: readonly LayerRecipient[],
): Promise<Record<string, string>> {
  if (recipients.length === 0) {
    throw new OciLimitError('A layer needs at least one recipient', {
      hint: 'Pass a jweRecipient, a digicapRecipient, or both.',
    })
  }
  const privateJson = encodePrivateOptions(options.private)
  const annotations: Record<string, string> = {}
  try {
    for (const recipient of recipients) {
      const name = keysAnnotation(recipient.protocol)
      const entry = encodeBase64(await recipient.wrap(privateJson))
      annotations[name] = annotations[name] ? `${annotations[name]},${entry}` : entry
    }
  } finally {
    privateJson.fill(0)
  }
  annotations[ANNOTATION_PUBOPTS] = encodeBase64(encodePublicOptions(options.public))
  return annotations
}

/**
 * The public options of an encrypted layer's descriptor.
 * @throws {OciFormatError} when the annotation is missing or malformed.
 */
export function publicOptionsOf(
  annotations: Record<string, string> | undefined,
): PublicLayerOptions {
  const value = annotations?.[ANNOTATION_PUBOPTS]
  if (value === undefined) {
    throw new OciFormatError('Encrypted layer has no pubopts annotation', {
      details: { annotation: ANNOTATION_PUBOPTS },
    })
  }
  return decodePublicOptions(decodeBase64(value, ANNOTATION_PUBOPTS))
}

/**
 * Unwraps a layer's private options with the first unwrapper and payload that work.
 *
 * @throws {OciKeyError} when no unwrapper's protocol is on the layer or none opens it
 *   (`details.failures` holds each failure's code).
 * @throws {OciFormatError} / {@link OciLimitError} for a malformed or oversized annotation.
 */
export async function unwrapPrivateOptions(
  annotations: Record<string, string> | undefined,
  unwrappers: readonly LayerUnwrapper[],
): Promise<PrivateLayerOptions> {
  const failures: { protocol: string; code: string }[] = []
  const tried: string[] = []
  let lastCause: unknown
  for (const unwrapper of unwrappers) {
    const value = annotations?.[keysAnnotation(unwrapper.protocol)]
    if (value === undefined) continue
    if (value.length > MAX_KEYS_ANNOTATION_LENGTH) {
      throw new OciLimitError('Recipient annotation is too long', {
        details: { protocol: unwrapper.protocol, max: MAX_KEYS_ANNOTATION_LENGTH },
      })
    }
    const entries = value.split(',')
    if (entries.length > MAX_WRAPS_PER_PROTOCOL) {
      throw new OciLimitError('Too many wrapped copies for one protocol', {
        details: { protocol: unwrapper.protocol, max: MAX_WRAPS_PER_PROTOCOL },
      })
    }
    tried.push(unwrapper.protocol)
    for (const entry of entries) {
      const payload = decodeBase64(entry, keysAnnotation(unwrapper.protocol))
      let json: Uint8Array | undefined
      try {
        json = await unwrapper.unwrap(payload)
        return decodePrivateOptions(json)
      } catch (cause) {
        lastCause = cause
        failures.push({
          protocol: unwrapper.protocol,
          code: cause instanceof DigicapError ? cause.code : 'UNKNOWN',
        })
      } finally {
        json?.fill(0)
      }
    }
  }
  throw new OciKeyError(
    tried.length === 0
      ? 'No recipient of this layer matches a key given'
      : 'No key given opens this layer',
    {
      cause: lastCause,
      details: {
        protocols: unwrappers.map((u) => u.protocol),
        tried,
        failures,
      },
      hint: 'Pass the unwrapper (private key, or Digicap grant) the image was sealed to.',
    },
  )
}
