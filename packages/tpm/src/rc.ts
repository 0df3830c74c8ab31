/**
 * TPM 2.0 response codes (TCG TPM 2.0 Library, Part 2, §6.6): decoding of format-0 and
 * format-1 codes and the mapping of a failed command to typed errors.
 */
import type { DigicapError } from '@digicap/capsule-core'
import {
  LOCKOUT_HINT,
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmLockoutError,
  TpmUnavailableError,
} from './errors.ts'

/** Response codes acted on, as base codes (number bits stripped). */
export const TPM_RC = {
  SUCCESS: 0x000,
  // Format 0 errors (RC_VER1 = 0x100).
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  COMMAND_CODE: 0x143,
  AUTHSIZE: 0x144,
  AUTH_CONTEXT: 0x145,
  NV_DEFINED: 0x14c,
  POLICY: 0x126,
  NV_AUTHORIZATION: 0x149,
  NV_UNINITIALIZED: 0x14a,
  PCR_CHANGED: 0x128,
  // Format 1 errors (RC_FMT1 = 0x080).
  ATTRIBUTES: 0x082,
  VALUE: 0x084,
  HANDLE: 0x08b,
  AUTH_FAIL: 0x08e,
  SCHEME: 0x092,
  SIZE: 0x095,
  SIGNATURE: 0x09b,
  KEY: 0x09c,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
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

/** `0x…` with at least three hex digits, as tpm2-tools prints codes. */
export function hexCode(rc: number): string {
  return `0x${(rc >>> 0).toString(16).padStart(3, '0')}`
}

/**
 * The error for a busy/lockout warning: {@link TpmLockoutError} for `TPM_RC_LOCKOUT`, else
 * {@link TpmBusyError} (`reason: 'busy'`).
 */
export function busyError(base: number, details: Record<string, unknown>): TpmBusyError {
  if (base === TPM_RC.LOCKOUT) {
    return new TpmLockoutError('The TPM is in dictionary-attack lockout', {
      details: { ...details, reason: 'lockout' },
      hint: LOCKOUT_HINT,
    })
  }
  return new TpmBusyError('The TPM is busy or temporarily refusing commands', {
    details: { ...details, reason: 'busy' },
    hint: 'Retry shortly; if it persists, flush transient objects (tpm2_flushcontext -t).',
  })
}

/**
 * What every TPM error carries about a failed command's response code, decoded: the command,
 * the code, its base and the parameter/handle/session number it names.
 */
export function responseCodeDetails(command: string, rc: number): Record<string, unknown> {
  const d = decodeResponseCode(rc)
  const details: Record<string, unknown> = { command, rc: hexCode(d.rc), base: hexCode(d.base) }
  if (d.subject !== undefined) details[d.subject] = d.n
  return details
}

/**
 * Maps the response code of a failed command to a typed error. `refine` sees the decoded
 * code first and may return a command-specific error (the keyguard's `UNWRAP` for a
 * decryption failure); otherwise: software layer → `TPM_COMMAND`; busy, memory, retry and
 * lockout warnings → `TPM_BUSY`; handle errors → `TPM_HANDLE`; not started → `TPM_UNAVAILABLE`;
 * anything else → `TPM_COMMAND`. `details` carry the command, the code, its base and the
 * parameter/handle/session number; never any of the command's or response's bytes.
 */
export function responseCodeError(
  command: string,
  rc: number,
  refine?: (
    decoded: DecodedResponseCode,
    details: Record<string, unknown>,
  ) => DigicapError | undefined,
): DigicapError {
  const d = decodeResponseCode(rc)
  const details = responseCodeDetails(command, rc)
  if (d.layer !== 0) {
    return new TpmCommandError('The TPM answered with a code from a software layer', {
      details: { ...details, reason: 'layer' },
    })
  }
  const refined = refine?.(d, details)
  if (refined !== undefined) return refined
  if (d.format === 0 && BUSY_CODES.has(d.base)) return busyError(d.base, details)
  if (
    (d.format === 0 && d.base >= TPM_RC.REFERENCE_H0 && d.base <= TPM_RC.REFERENCE_H0 + 6) ||
    (d.format === 1 &&
      d.subject === 'handle' &&
      (d.base === TPM_RC.HANDLE || d.base === TPM_RC.KEY || d.base === TPM_RC.ATTRIBUTES))
  ) {
    return new TpmHandleError('No usable object at the handle', {
      details,
      hint: 'Provision the key or fix the configured handle.',
    })
  }
  if (d.format === 0 && d.base === TPM_RC.INITIALIZE) {
    return new TpmUnavailableError('The TPM has not been started (TPM2_Startup)', {
      details: { ...details, reason: 'not-started' },
      hint: 'Run tpm2_startup -c, or let the firmware/kernel start the TPM.',
    })
  }
  return new TpmCommandError(`${command} failed`, { details })
}
