/**
 * Marshalling of `TPM2_RSA_Decrypt` (TCG TPM 2.0 Library, Part 3, §14.3) with one password
 * authorization (TPM_RS_PW, empty nonce, empty password), OAEP with SHA-256 and an empty
 * label, and a strict parser of its response. All integers are big-endian.
 *
 * Command:
 * ```
 * tag 0x8002 (TPM_ST_SESSIONS) u16 | commandSize u32 | commandCode 0x00000159 u32
 * keyHandle u32
 * authorizationSize u32 = 9
 *   sessionHandle 0x40000009 u32 | nonceCaller.size 0 u16 | sessionAttributes 0x01 u8 | hmac.size 0 u16
 * cipherText: TPM2B_PUBLIC_KEY_RSA (size u16, bytes)
 * inScheme: TPMT_RSA_DECRYPT = scheme 0x0017 (TPM_ALG_OAEP) u16, hashAlg 0x000B (SHA-256) u16
 * label: TPM2B_DATA size 0 u16
 * ```
 * Response (success): `tag 0x8002 | responseSize | 0 | parameterSize u32 | message TPM2B |
 * nonceTPM.size 0 | sessionAttributes u8 | hmac.size 0`. Response (failure): `tag 0x8001 |
 * 10 | responseCode`.
 */
import {
  HEADER_LENGTH,
  malformedResponse,
  responseLength,
  TPM_ST_NO_SESSIONS,
  TPM_ST_SESSIONS,
  TpmCommandError,
} from '@digicap/tpm'
import { rsaDecryptError } from './rc.ts'

export { HEADER_LENGTH, MAX_RESPONSE_LENGTH, responseLength } from '@digicap/tpm'

export const TPM_CC_RSA_DECRYPT = 0x00000159
export const TPM_RS_PW = 0x40000009
export const TPM_ALG_OAEP = 0x0017
export const TPM_ALG_SHA256 = 0x000b
/** `continueSession`: what tpm2-tools sets on a password authorization too. */
const SESSION_ATTRIBUTES = 0x01
/** Largest RSA ciphertext a TPM handles (RSA-4096). */
const MAX_CIPHERTEXT_LENGTH = 512

function malformed(why: string, details: Record<string, unknown> = {}): TpmCommandError {
  return malformedResponse('TPM2_RSA_Decrypt', why, details)
}

/** Builds the command bytes. Throws `TpmCommandError` for a ciphertext of impossible size. */
export function encodeRsaDecrypt(keyHandle: number, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length < 1 || ciphertext.length > MAX_CIPHERTEXT_LENGTH) {
    throw new TpmCommandError('Ciphertext length is outside what a TPM accepts', {
      details: { command: 'TPM2_RSA_Decrypt', length: ciphertext.length },
    })
  }
  const size = HEADER_LENGTH + 4 + 4 + 9 + 2 + ciphertext.length + 4 + 2
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  const u8 = (v: number) => {
    view.setUint8(at, v)
    at += 1
  }
  const u16 = (v: number) => {
    view.setUint16(at, v)
    at += 2
  }
  const u32 = (v: number) => {
    view.setUint32(at, v)
    at += 4
  }
  u16(TPM_ST_SESSIONS)
  u32(size)
  u32(TPM_CC_RSA_DECRYPT)
  u32(keyHandle >>> 0)
  // Authorization area: its size, then one TPMS_AUTH_COMMAND.
  u32(9)
  u32(TPM_RS_PW)
  u16(0) // nonceCaller
  u8(SESSION_ATTRIBUTES)
  u16(0) // hmac (the empty password)
  // Parameters: cipherText, inScheme, label.
  u16(ciphertext.length)
  out.set(ciphertext, at)
  at += ciphertext.length
  u16(TPM_ALG_OAEP)
  u16(TPM_ALG_SHA256)
  u16(0)
  return out
}

/**
 * Parses a complete `TPM2_RSA_Decrypt` response. Returns the plaintext in a fresh buffer
 * (the caller owns and should zero it); throws only typed errors: the mapped TPM error for a
 * non-zero response code, `TpmCommandError` (`reason: 'malformed-response'`) for anything
 * that does not follow the layout exactly. Never reads outside `response`.
 */
export function decodeRsaDecryptResponse(response: Uint8Array): Uint8Array {
  if (response.length < HEADER_LENGTH) throw malformed('short', { length: response.length })
  const size = responseLength(response, 'TPM2_RSA_Decrypt')
  if (size !== response.length) throw malformed('length', { size, length: response.length })
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength)
  const tag = view.getUint16(0)
  const rc = view.getUint32(6)
  if (rc !== 0) {
    // An error response carries no parameters and no sessions (Part 1, §18.10).
    if (tag !== TPM_ST_NO_SESSIONS || size !== HEADER_LENGTH) {
      throw malformed('error-layout', { size, tag: `0x${tag.toString(16)}` })
    }
    throw rsaDecryptError(rc)
  }
  if (tag !== TPM_ST_SESSIONS) throw malformed('tag', { tag: `0x${tag.toString(16)}` })
  // parameterSize (4) + message.size (2) at least, then the 5-byte password session.
  if (size < HEADER_LENGTH + 4 + 2 + 5) throw malformed('short', { size })
  const parameterSize = view.getUint32(HEADER_LENGTH)
  const messageSize = view.getUint16(HEADER_LENGTH + 4)
  if (parameterSize !== 2 + messageSize) {
    throw malformed('parameter-size', { parameterSize, messageSize })
  }
  if (messageSize < 1 || messageSize > MAX_CIPHERTEXT_LENGTH) {
    throw malformed('message-size', { messageSize })
  }
  const sessionsAt = HEADER_LENGTH + 4 + parameterSize
  // One password session: nonceTPM (empty), sessionAttributes, hmac (empty).
  if (size !== sessionsAt + 5) throw malformed('session-area', { size, sessionsAt })
  if (view.getUint16(sessionsAt) !== 0 || view.getUint16(sessionsAt + 3) !== 0) {
    throw malformed('session-area', { size, sessionsAt })
  }
  const messageAt = HEADER_LENGTH + 6
  return response.slice(messageAt, messageAt + messageSize)
}

/**
 * The parameters of `TPM2_RSA_Decrypt` alone (cipherText, OAEP-SHA-256 scheme, empty label),
 * for a command sent in a session. @throws {TpmCommandError} for an impossible length.
 */
export function rsaDecryptParameters(ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length < 1 || ciphertext.length > MAX_CIPHERTEXT_LENGTH) {
    throw new TpmCommandError('Ciphertext length is outside what a TPM accepts', {
      details: { command: 'TPM2_RSA_Decrypt', length: ciphertext.length },
    })
  }
  const out = new Uint8Array(2 + ciphertext.length + 6)
  const view = new DataView(out.buffer)
  view.setUint16(0, ciphertext.length)
  out.set(ciphertext, 2)
  view.setUint16(2 + ciphertext.length, TPM_ALG_OAEP)
  view.setUint16(4 + ciphertext.length, TPM_ALG_SHA256)
  view.setUint16(6 + ciphertext.length, 0)
  return out
}

/**
 * The plaintext out of decrypted `TPM2_RSA_Decrypt` response parameters (`message` TPM2B and
 * nothing else), in a fresh buffer. @throws {TpmCommandError} `malformed-response`.
 */
export function decodeRsaDecryptMessage(parameters: Uint8Array): Uint8Array {
  if (parameters.length < 2) throw malformed('short', { length: parameters.length })
  const size = new DataView(parameters.buffer, parameters.byteOffset).getUint16(0)
  if (size < 1 || size > MAX_CIPHERTEXT_LENGTH || parameters.length !== 2 + size) {
    throw malformed('message-size', { messageSize: size, parameterSize: parameters.length })
  }
  return parameters.slice(2)
}
