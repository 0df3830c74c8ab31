/**
 * `TPM2_PolicyNV` (Part 3 §23.9) and its digest, and the password-session framing it and the
 * NV commands share (an NV index's or the owner hierarchy's empty authValue).
 */
import { createHash } from 'node:crypto'
import { TpmPolicyError } from '../errors.ts'
import { HEADER_LENGTH, malformedResponse, responseLength, TPM_ST_SESSIONS } from '../frame.ts'
import { TpmResponseReader, TpmWriter } from '../marshal.ts'
import type { Send } from '../object/read-public.ts'
import { responseCodeError } from '../rc.ts'
import { TPM_CC } from '../session/constants.ts'
import type { TpmSession } from '../session/session.ts'

/** TPM_EO (Part 2 §6.8): the comparisons PolicyNV makes. */
export const TPM_EO = {
  EQ: 0x0000,
  NEQ: 0x0001,
  SIGNED_GT: 0x0002,
  UNSIGNED_GT: 0x0003,
  SIGNED_LT: 0x0004,
  UNSIGNED_LT: 0x0005,
  SIGNED_GE: 0x0006,
  UNSIGNED_GE: 0x0007,
  SIGNED_LE: 0x0008,
  UNSIGNED_LE: 0x0009,
  BITSET: 0x000a,
  BITCLEAR: 0x000b,
} as const

/** The password session handle (Part 2 §7.6). */
const TPM_RS_PW = 0x40000009

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const u16 = (v: number) => new TpmWriter().u16(v).bytes()
const u32 = (v: number) => new TpmWriter().u32(v).bytes()

/** The authorization area of one password session with an empty password. */
function passwordAuth(): Uint8Array {
  return new TpmWriter()
    .u32(TPM_RS_PW)
    .sized(new Uint8Array(0)) // nonceCaller
    .u8(0) // sessionAttributes
    .sized(new Uint8Array(0)) // empty password
    .bytes()
}

/**
 * A command whose first `authorized` handles are authorized by an empty password (the owner
 * hierarchy of a TPM whose owner set none; an NV index's empty authValue).
 */
export function passwordCommand(
  code: number,
  handles: readonly number[],
  authorized: number,
  parameters: Uint8Array,
): Uint8Array {
  const body = new TpmWriter()
  for (const h of handles) body.u32(h)
  const auth = new TpmWriter()
  for (let i = 0; i < authorized; i++) auth.raw(passwordAuth())
  const authBytes = auth.bytes()
  body.u32(authBytes.length).raw(authBytes).raw(parameters)
  const bytes = body.bytes()
  return new TpmWriter()
    .u16(TPM_ST_SESSIONS)
    .u32(HEADER_LENGTH + bytes.length)
    .u32(code)
    .raw(bytes)
    .bytes()
}

/** The response code of an answer (0 on success), after its length was checked. */
export function responseCode(command: string, response: Uint8Array): number {
  const size = responseLength(response, command)
  if (size !== response.length)
    throw malformedResponse(command, 'length', { size, length: response.length })
  return new DataView(response.buffer, response.byteOffset, response.byteLength).getUint32(6)
}

/**
 * Checks the answer to a password-session command and returns its parameters (the session
 * area, one empty acknowledgement per session, is skipped).
 */
export function passwordResponse(
  command: string,
  response: Uint8Array,
  refine?: Parameters<typeof responseCodeError>[2],
): TpmResponseReader {
  const rc = responseCode(command, response)
  if (rc !== 0) throw responseCodeError(command, rc, refine)
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength)
  if (view.getUint16(0) !== TPM_ST_SESSIONS) throw malformedResponse(command, 'tag')
  const r = new TpmResponseReader(response, command, HEADER_LENGTH)
  const parameterSize = r.u32('parameterSize')
  return new TpmResponseReader(r.raw('parameters', parameterSize), command)
}

/**
 * The policyDigest after `TPM2_PolicyNV(operandB, offset, operation)` on the index `name`
 * (Part 3 §23.9): `H(previous ‖ TPM_CC_PolicyNV ‖ H(operandB ‖ offset ‖ operation) ‖ name)`.
 */
export function policyNvDigest(
  previous: Uint8Array,
  name: Uint8Array,
  operandB: Uint8Array,
  offset: number,
  operation: number,
): Uint8Array {
  const args = sha256(operandB, u16(offset), u16(operation))
  return sha256(previous, u32(TPM_CC.PolicyNV), args, name)
}

/** An NV counter's value as PolicyNV compares it: eight bytes, big-endian. */
export function counterBytes(value: bigint): Uint8Array {
  if (value < 0n || value >= 1n << 64n) {
    throw new TpmPolicyError('An NV counter value is 64 bits', {
      details: { reason: 'approval-invalid', value: String(value) },
    })
  }
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, value)
  return b
}

/**
 * `TPM2_PolicyNV(operandB, offset, operation)` on `index` in the policy `session`,
 * read-authorized by the index's empty authValue (password session). The TPM compares the
 * index's data at `offset` with `operandB` and extends the session's digest with the index's
 * name; it fails `TPM_RC_POLICY` when the comparison does not hold.
 */
export async function policyNv(
  send: Send,
  session: TpmSession,
  index: number,
  operandB: Uint8Array,
  offset: number,
  operation: number,
  refine?: Parameters<typeof responseCodeError>[2],
): Promise<void> {
  const parameters = new TpmWriter().sized(operandB).u16(offset).u16(operation).bytes()
  passwordResponse(
    'TPM2_PolicyNV',
    await send(passwordCommand(TPM_CC.PolicyNV, [index, index, session.handle], 1, parameters)),
    refine,
  ).end()
}
