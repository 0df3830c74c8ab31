/**
 * TPM 2.0 response codes (TCG TPM 2.0 Library, Part 2, §6.6): decoding of format-0 and
 * format-1 codes and the mapping of a failed command to the keyguard's typed errors.
 */
import type { DigicapError } from '@digicap/capsule-core'
import {
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmUnavailableError,
  UnwrapError,
} from '../errors.ts'

/** Response codes the keyguard acts on, as base codes (number bits stripped). */
export const TPM_RC = {
  SUCCESS: 0x000,
  // Format 0 errors (RC_VER1 = 0x100).
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  AUTH_CONTEXT: 0x145,
  NV_DEFINED: 0x14c,
  // Format 1 errors (RC_FMT1 = 0x080).
  ATTRIBUTES: 0x082,
  VALUE: 0x084,
  HANDLE: 0x08b,
  AUTH_FAIL: 0x08e,
  SCHEME: 0x092,
  SIZE: 0x095,
  KEY: 0x09c,
  BAD_AUTH: 0x0a2,
  // Format 0 warnings (RC_WARN = 0x900).
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  MEMORY: 0x904,
  SESSION_HANDLES: 0x905,
  OBJECT_HANDLES: 0x906,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  REFERENCE_H0: 0x910,
  NV_RATE: 0x920,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  NV_UNAVAILABLE: 0x923,
} as const

/** A response code taken apart. */
export interface DecodedResponseCode {
  /** The code as received. */
  rc: number
  /** TSS layer (bits 16–23): 0 for a code that came from the TPM itself. */
  layer: number
  /** `1` when bit 7 is set (error number + parameter/handle/session number), else `0`. */
  format: 0 | 1
  /** The code with the number bits cleared: compare it with {@link TPM_RC}. */
  base: number
  /** Format 0 only: bit 11 (severity) set, a warning the caller may retry on. */
  warning: boolean
  /** Format 0 only: bit 10 (TCG vendor-defined) set. */
  vendor: boolean
  /** Format 1 only: what the number `n` refers to (absent when the TPM gave no number). */
  subject?: 'parameter' | 'handle' | 'session'
  /** Format 1 only: 1-based parameter, handle or session number (0 = unspecified). */
  n?: number
}

/** Decodes a 32-bit TPM response code. */
export function decodeResponseCode(rc: number): DecodedResponseCode {
  const code = rc >>> 0
  const layer = (code >>> 16) & 0xff
  const tpm = code & 0xffff
  if (tpm & 0x80) {
    // Format 1: E in bits 0–5, P in bit 6, N in bits 8–11.
    const base = 0x80 | (tpm & 0x3f)
    const nField = (tpm >>> 8) & 0xf
    const format1 = { rc: code, layer, format: 1, base, warning: false, vendor: false } as const
    if (tpm & 0x40) return { ...format1, subject: 'parameter', n: nField }
    if (nField & 0x8) return { ...format1, subject: 'session', n: nField & 0x7 }
    if (nField === 0) return format1
    return { ...format1, subject: 'handle', n: nField }
  }
  // Format 0: E in bits 0–6, V in bit 8, T in bit 10, S in bit 11.
  return {
    rc: code,
    layer,
    format: 0,
    base: tpm & 0x97f,
    warning: (tpm & 0x800) !== 0,
    vendor: (tpm & 0x400) !== 0,
  }
}

/** Reduces a TPM response code to its base: strips the handle/parameter/session number. */
export function baseResponseCode(rc: number): number {
  return decodeResponseCode(rc).base
}

/** Warnings a caller may simply retry the same command on (Part 2, §6.6.3). */
export const RETRYABLE: ReadonlySet<number> = new Set([
  TPM_RC.RETRY,
  TPM_RC.YIELDED,
  TPM_RC.TESTING,
])

/** Codes reported as {@link TpmBusyError}: busy, out of memory, retrying, locked out. */
export const BUSY_CODES: ReadonlySet<number> = new Set([
  TPM_RC.OBJECT_MEMORY,
  TPM_RC.SESSION_MEMORY,
  TPM_RC.MEMORY,
  TPM_RC.SESSION_HANDLES,
  TPM_RC.OBJECT_HANDLES,
  TPM_RC.YIELDED,
  TPM_RC.CANCELED,
  TPM_RC.TESTING,
  TPM_RC.NV_RATE,
  TPM_RC.LOCKOUT,
  TPM_RC.RETRY,
  TPM_RC.NV_UNAVAILABLE,
])

function hex(rc: number): string {
  return `0x${(rc >>> 0).toString(16).padStart(3, '0')}`
}

/**
 * Maps the response code of a failed `TPM2_RSA_Decrypt` (sent by the direct path) to a
 * typed error. `details` carry the code, its base and the parameter/handle/session number;
 * never any of the command's or response's bytes.
 */
export function rsaDecryptError(rc: number): DigicapError {
  const d = decodeResponseCode(rc)
  const details: Record<string, unknown> = {
    command: 'TPM2_RSA_Decrypt',
    rc: hex(d.rc),
    base: hex(d.base),
  }
  if (d.subject !== undefined) details[d.subject] = d.n
  if (d.layer !== 0) {
    return new TpmCommandError('The TPM answered with a code from a software layer', {
      details: { ...details, reason: 'layer' },
    })
  }
  if (d.format === 0 && BUSY_CODES.has(d.base)) {
    const lockout = d.base === TPM_RC.LOCKOUT
    return new TpmBusyError('The TPM is busy or temporarily refusing commands', {
      details: { ...details, reason: lockout ? 'lockout' : 'busy' },
      hint: lockout
        ? 'The TPM is in dictionary-attack lockout; wait for the lockout to expire.'
        : 'Retry shortly; if it persists, flush transient objects (tpm2_flushcontext -t).',
    })
  }
  if (
    (d.format === 0 && d.base >= TPM_RC.REFERENCE_H0 && d.base <= TPM_RC.REFERENCE_H0 + 6) ||
    (d.format === 1 &&
      d.subject === 'handle' &&
      (d.base === TPM_RC.HANDLE || d.base === TPM_RC.KEY || d.base === TPM_RC.ATTRIBUTES))
  ) {
    return new TpmHandleError('No usable key at the persistent handle', {
      details,
      hint: 'Provision the key (createIfMissing) or fix the configured handle.',
    })
  }
  // libtpms (swtpm) answers an OAEP decoding failure with TPM_RC_FAILURE rather than
  // TPM_RC_VALUE; tpm2-tools' mapping treats it the same way for an unwrap.
  if (
    (d.format === 1 &&
      (d.subject === 'parameter' || d.subject === undefined) &&
      (d.base === TPM_RC.VALUE ||
        d.base === TPM_RC.SIZE ||
        d.base === TPM_RC.SCHEME ||
        d.base === TPM_RC.KEY)) ||
    (d.format === 0 && d.base === TPM_RC.FAILURE)
  ) {
    return new UnwrapError('The TPM could not decrypt the wrapped key', {
      details,
      hint: 'The ciphertext was not wrapped to this TPM key, or it was altered.',
    })
  }
  if (d.format === 0 && d.base === TPM_RC.INITIALIZE) {
    return new TpmUnavailableError('The TPM has not been started (TPM2_Startup)', {
      details: { ...details, reason: 'not-started' },
      hint: 'Run tpm2_startup -c, or let the firmware/kernel start the TPM.',
    })
  }
  return new TpmCommandError('TPM2_RSA_Decrypt failed', { details })
}
