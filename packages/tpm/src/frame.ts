/**
 * The frame every TPM 2.0 response starts with (TPM 2.0 Part 1 §18): `tag u16 | size u32 |
 * responseCode u32`, big-endian. A transport reads `size` to know how many bytes to wait for.
 */
import { TpmCommandError } from './errors.ts'

export const TPM_ST_NO_SESSIONS = 0x8001
export const TPM_ST_SESSIONS = 0x8002
/** Response header: tag, size, code. */
export const HEADER_LENGTH = 10
/** Largest response accepted (TPM2_PT_MAX_RESPONSE_SIZE is 4096 on real TPMs). */
export const MAX_RESPONSE_LENGTH = 4096

/** A `TpmCommandError` with `reason: 'malformed-response'`. */
export function malformedResponse(
  command: string | undefined,
  why: string,
  details: Record<string, unknown> = {},
): TpmCommandError {
  return new TpmCommandError('The TPM response is malformed', {
    details: {
      ...(command === undefined ? {} : { command }),
      reason: 'malformed-response',
      why,
      ...details,
    },
  })
}

/**
 * Reads the `responseSize` field of a response header, checking tag and bounds, so a
 * transport knows how many bytes to wait for. Needs at least 6 bytes.
 */
export function responseLength(header: Uint8Array, command?: string): number {
  if (header.length < 6) throw malformedResponse(command, 'short-header', { length: header.length })
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength)
  const tag = view.getUint16(0)
  if (tag !== TPM_ST_SESSIONS && tag !== TPM_ST_NO_SESSIONS) {
    throw malformedResponse(command, 'tag', { tag: `0x${tag.toString(16)}` })
  }
  const size = view.getUint32(2)
  if (size < HEADER_LENGTH || size > MAX_RESPONSE_LENGTH)
    throw malformedResponse(command, 'size', { size })
  return size
}
