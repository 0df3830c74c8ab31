/**
 * The four TPM commands the agent sends on every run, marshalled directly (TPM 2.0 Part 3):
 * TPM2_PCR_Reset (§22.8), TPM2_PCR_Extend (§22.2), TPM2_Quote (§18.4) and TPM2_PCR_Read
 * (§22.4). Authorized objects use one password session (TPM_RS_PW, empty password): PCR 23 and
 * the AK have no auth value. Responses are parsed strictly; a failed command is mapped by
 * `@digicap/tpm` (`TpmLockoutError` for a locked-out AK).
 */
import {
  HEADER_LENGTH,
  malformedResponse,
  responseCodeError,
  responseLength,
  TPM_ST_NO_SESSIONS,
  TPM_ST_SESSIONS,
} from '@digicap/tpm'
import { concatBytes } from '../bytes.ts'

export const TPM_CC = {
  PCR_Reset: 0x13d,
  Quote: 0x158,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
} as const
const TPM_RS_PW = 0x40000009
const TPM_ALG_SHA256 = 0x000b
const TPM_ALG_NULL = 0x0010
/** Most digests one TPM2_PCR_Read returns (TPML_DIGEST holds 8). */
export const MAX_PCRS_PER_READ = 8

const u16 = (v: number) => Uint8Array.of((v >>> 8) & 0xff, v & 0xff)
const u32 = (v: number) => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, v >>> 0)
  return b
}

/** `auth size ‖ TPMS_AUTH_COMMAND` for TPM_RS_PW with the empty password. */
const PASSWORD_AUTH = concatBytes(u32(9), u32(TPM_RS_PW), u16(0), Uint8Array.of(0x01), u16(0))

function command(cc: number, handles: number[], params: Uint8Array, auth: boolean): Uint8Array {
  const body = concatBytes(...handles.map(u32), ...(auth ? [PASSWORD_AUTH] : []), params)
  return concatBytes(
    u16(auth ? TPM_ST_SESSIONS : TPM_ST_NO_SESSIONS),
    u32(HEADER_LENGTH + body.length),
    u32(cc),
    body,
  )
}

/** TPML_PCR_SELECTION over one sha256 bank. */
export function pcrSelection(pcrs: readonly number[]): Uint8Array {
  const bitmap = new Uint8Array(3)
  for (const p of pcrs) bitmap[p >> 3] = (bitmap[p >> 3] ?? 0) | (1 << (p & 7))
  return concatBytes(u32(1), u16(TPM_ALG_SHA256), Uint8Array.of(3), bitmap)
}

export function encodePcrReset(pcr: number): Uint8Array {
  return command(TPM_CC.PCR_Reset, [pcr], new Uint8Array(0), true)
}

export function encodePcrExtend(pcr: number, digest: Uint8Array): Uint8Array {
  return command(TPM_CC.PCR_Extend, [pcr], concatBytes(u32(1), u16(TPM_ALG_SHA256), digest), true)
}

/** TPM2_Quote with the AK's own scheme (inScheme TPM_ALG_NULL). */
export function encodeQuote(
  akHandle: number,
  qualifyingData: Uint8Array,
  pcrs: readonly number[],
): Uint8Array {
  return command(
    TPM_CC.Quote,
    [akHandle],
    concatBytes(u16(qualifyingData.length), qualifyingData, u16(TPM_ALG_NULL), pcrSelection(pcrs)),
    true,
  )
}

export function encodePcrRead(pcrs: readonly number[]): Uint8Array {
  return command(TPM_CC.PCR_Read, [], pcrSelection(pcrs), false)
}

/** A bounds-checked cursor over one response; every failure is `TPM_COMMAND` malformed-response. */
class ResponseReader {
  #at = 0
  readonly #view: DataView
  readonly bytes: Uint8Array
  readonly name: string
  constructor(bytes: Uint8Array, name: string) {
    this.bytes = bytes
    this.name = name
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  get at(): number {
    return this.#at
  }
  #need(n: number, field: string): void {
    if (this.#at + n > this.bytes.length) {
      throw malformedResponse(this.name, 'short', { field, at: this.#at })
    }
  }
  u8(field: string): number {
    this.#need(1, field)
    return this.#view.getUint8(this.#at++)
  }
  u16(field: string): number {
    this.#need(2, field)
    const v = this.#view.getUint16(this.#at)
    this.#at += 2
    return v
  }
  u32(field: string): number {
    this.#need(4, field)
    const v = this.#view.getUint32(this.#at)
    this.#at += 4
    return v
  }
  take(n: number, field: string): Uint8Array {
    this.#need(n, field)
    const v = this.bytes.slice(this.#at, this.#at + n)
    this.#at += n
    return v
  }
  sized(field: string): Uint8Array {
    return this.take(this.u16(`${field}.size`), field)
  }
}

/**
 * Checks the header and response code, and returns a reader at the parameters (after
 * `parameterSize` for a session response) with where the parameters end.
 */
function open(name: string, response: Uint8Array): { r: ResponseReader; end: number } {
  if (response.length < HEADER_LENGTH) {
    throw malformedResponse(name, 'short', { length: response.length })
  }
  const size = responseLength(response, name)
  if (size !== response.length)
    throw malformedResponse(name, 'length', { size, length: response.length })
  const r = new ResponseReader(response, name)
  const tag = r.u16('tag')
  r.u32('responseSize')
  const rc = r.u32('responseCode')
  if (rc !== 0) {
    if (tag !== TPM_ST_NO_SESSIONS || size !== HEADER_LENGTH) {
      throw malformedResponse(name, 'error-layout', { size })
    }
    throw responseCodeError(name, rc)
  }
  if (tag !== TPM_ST_SESSIONS) return { r, end: size }
  const parameterSize = r.u32('parameterSize')
  const end = r.at + parameterSize
  // One password session answer: nonceTPM (empty), sessionAttributes, hmac (empty).
  if (end + 5 !== size) throw malformedResponse(name, 'session-area', { size, parameterSize })
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength)
  if (view.getUint16(end) !== 0 || view.getUint16(end + 3) !== 0) {
    throw malformedResponse(name, 'session-area', { size })
  }
  return { r, end }
}

function finish(name: string, r: ResponseReader, end: number): void {
  if (r.at !== end) throw malformedResponse(name, 'trailing-bytes', { at: r.at, end })
}

/** A response with no parameters (PCR_Reset, PCR_Extend). */
export function decodeEmpty(name: string, response: Uint8Array): void {
  const { r, end } = open(name, response)
  finish(name, r, end)
}

export interface RawQuote {
  /** TPMS_ATTEST as signed (the TPM2B's content). */
  attest: Uint8Array
  /** TPMT_SIGNATURE. */
  signature: Uint8Array
}

export function decodeQuote(response: Uint8Array): RawQuote {
  const name = 'TPM2_Quote'
  const { r, end } = open(name, response)
  const attest = r.sized('quoted')
  if (attest.length === 0 || r.at >= end) throw malformedResponse(name, 'quoted', {})
  const signature = r.take(end - r.at, 'signature')
  finish(name, r, end)
  return { attest, signature }
}

/** The values of exactly `pcrs` (sha256), or a malformed-response error. */
export function decodePcrRead(
  response: Uint8Array,
  pcrs: readonly number[],
): Map<number, Uint8Array> {
  const name = 'TPM2_PCR_Read'
  const { r, end } = open(name, response)
  r.u32('pcrUpdateCounter')
  const selection = r.take(4 + 2 + 1 + 3, 'pcrSelectionOut')
  const want = pcrSelection(pcrs)
  if (!selection.every((b, i) => b === want[i])) {
    throw malformedResponse(name, 'selection', { pcrs })
  }
  const count = r.u32('pcrValues.count')
  if (count !== pcrs.length) throw malformedResponse(name, 'count', { count })
  const sorted = [...pcrs].sort((a, b) => a - b)
  const values = new Map<number, Uint8Array>()
  for (const p of sorted) {
    const v = r.sized(`pcrValues[${p}]`)
    if (v.length !== 32) throw malformedResponse(name, 'digest-size', { pcr: p, size: v.length })
    values.set(p, v)
  }
  finish(name, r, end)
  return values
}
