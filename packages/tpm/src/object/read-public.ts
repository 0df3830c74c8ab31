/**
 * `TPM2_ReadPublic` (Part 3 §12.4) sent directly: the public area of the object at a handle.
 * No session: the answer is not trusted by itself. A caller compares the name with the one it
 * pinned; the salted session then proves the TPM holds the matching private key.
 */
import { TpmSessionError } from '../errors.ts'
import { HEADER_LENGTH, malformedResponse, responseLength, TPM_ST_NO_SESSIONS } from '../frame.ts'
import { TpmResponseReader, TpmWriter } from '../marshal.ts'
import { responseCodeError } from '../rc.ts'
import { TPM_CC } from '../session/constants.ts'
import { parseRsaPublic, type RsaKeyPublic } from './public.ts'

export type Send = (command: Uint8Array) => Promise<Uint8Array>

/** Builds a no-session command: header, code, handles, parameters. */
export function plainCommand(
  code: number,
  handles: readonly number[],
  parameters: Uint8Array,
): Uint8Array {
  const w = new TpmWriter()
  for (const h of handles) w.u32(h)
  w.raw(parameters)
  const body = w.bytes()
  return new TpmWriter()
    .u16(TPM_ST_NO_SESSIONS)
    .u32(HEADER_LENGTH + body.length)
    .u32(code)
    .raw(body)
    .bytes()
}

/**
 * Checks a no-session response and returns a reader positioned after its header.
 * @throws the typed error of a non-zero response code (via `responseCodeError`).
 */
export function plainResponse(command: string, response: Uint8Array): TpmResponseReader {
  const size = responseLength(response, command)
  if (size !== response.length)
    throw malformedResponse(command, 'length', { size, length: response.length })
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength)
  const rc = view.getUint32(6)
  if (rc !== 0) throw responseCodeError(command, rc)
  if (view.getUint16(0) !== TPM_ST_NO_SESSIONS) throw malformedResponse(command, 'tag')
  return new TpmResponseReader(response, command, HEADER_LENGTH)
}

/** Reads the RSA public area at `handle`. @throws {TpmHandleError} no such object. */
export async function readRsaPublic(send: Send, handle: number): Promise<RsaKeyPublic> {
  const response = await send(plainCommand(TPM_CC.ReadPublic, [handle], new Uint8Array(0)))
  const r = plainResponse('TPM2_ReadPublic', response)
  const outPublic = r.sized('outPublic', 1024)
  const name = r.sized('name', 66)
  r.sized('qualifiedName', 66)
  r.end()
  const pub = parseRsaPublic(outPublic)
  if (!Buffer.from(name).equals(Buffer.from(pub.name))) {
    throw malformedResponse('TPM2_ReadPublic', 'name', {})
  }
  return pub
}

/**
 * Reads the public area at `handle` and checks its name against the pinned one.
 * @throws {TpmSessionError} `reason: 'key-substituted'` when another key sits at the handle.
 */
export async function readPinnedPublic(
  send: Send,
  handle: number,
  pinnedName: Uint8Array,
): Promise<RsaKeyPublic> {
  const pub = await readRsaPublic(send, handle)
  if (!Buffer.from(pub.name).equals(Buffer.from(pinnedName))) {
    throw new TpmSessionError('The key at the TPM handle is not the key this node pinned', {
      details: {
        reason: 'key-substituted',
        handle: `0x${handle.toString(16)}`,
        pinnedName: Buffer.from(pinnedName).toString('hex'),
        foundName: Buffer.from(pub.name).toString('hex'),
      },
      hint: 'Someone replaced the wrapping key (or the TPM). Do not re-pin: recover from the paper words onto a key you provision yourself.',
    })
  }
  return pub
}
