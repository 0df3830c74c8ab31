/**
 * One command authorized by (or merely encrypted through) a salted session, with parameter
 * encryption (TPM 2.0 Part 1 §19.6 HMAC, §21 parameter encryption, AES-128-CFB):
 *
 * - the first command parameter, when it is a TPM2B carrying a secret (`encryptCommand`), is
 *   encrypted with `KDFa(SHA-256, sessionKey ‖ authValue, "CFB", nonceCaller, nonceTPM, 256)`
 *   (key, then IV) before the HMAC is computed;
 * - `cpHash = SHA-256(commandCode ‖ names ‖ parameters as sent)`, and the command HMAC is
 *   `HMAC(sessionKey ‖ authValue, cpHash ‖ nonceCaller ‖ nonceTPM ‖ sessionAttributes)`;
 * - the response HMAC is checked over `rpHash = SHA-256(0 ‖ commandCode ‖ parameters)` with the
 *   new `nonceTPM` first, in constant time, BEFORE anything is decrypted or returned;
 * - the first response parameter (`encryptResponse`) is decrypted with
 *   `KDFa(…, "CFB", nonceTPM, nonceCaller, 256)`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'
import type { DigicapError } from '@digicap/capsule-core'
import { TpmSessionError } from '../errors.ts'
import {
  HEADER_LENGTH,
  malformedResponse,
  responseLength,
  TPM_ST_NO_SESSIONS,
  TPM_ST_SESSIONS,
} from '../frame.ts'
import { TpmResponseReader, TpmWriter } from '../marshal.ts'
import type { Send } from '../object/read-public.ts'
import { type DecodedResponseCode, responseCodeError } from '../rc.ts'
import { SESSION_ATTR, SHA256_SIZE } from './constants.ts'
import { kdfa } from './kdfa.ts'
import type { TpmSession } from './session.ts'

export interface SessionCommand {
  /** For errors: `TPM2_RSA_Decrypt`. */
  readonly name: string
  readonly code: number
  /** The command's handles with their names (a persistent object's name is its pinned name). */
  readonly handles: readonly { readonly handle: number; readonly name: Uint8Array }[]
  /** The marshalled parameters; the first one is a TPM2B when `encryptCommand` is set. */
  readonly parameters: Uint8Array
  /** Encrypt the first command parameter (it carries a secret). */
  readonly encryptCommand?: boolean
  /** Ask the TPM to encrypt the first response parameter (it carries a secret). */
  readonly encryptResponse?: boolean
  /**
   * Use the session as an audit session (`SESSION_ATTR.audit`): how a command without
   * authorization handles and without a TPM2B first parameter (`TPM2_PCR_Read`) gets a
   * response HMAC, so its answer is known to come from the salt key's TPM.
   */
  readonly audit?: boolean
  /** Keep the session for another command. Default `false`: the TPM flushes it. */
  readonly continueSession?: boolean
  /** The authorized entity's authValue (empty for the keyguard's keys). */
  readonly authValue?: Uint8Array
  /** Handles in the response before the parameters (e.g. 1 for `TPM2_CreatePrimary`). */
  readonly responseHandles?: number
  /** Command-specific mapping of a failure code, tried first. */
  readonly refine?: (
    d: DecodedResponseCode,
    details: Record<string, unknown>,
  ) => DigicapError | undefined
}

export interface SessionResponse {
  readonly handles: number[]
  /** The response parameters, first one decrypted. The caller owns and zeroes them. */
  readonly parameters: Uint8Array
}

function cfb(
  decrypt: boolean,
  hmacKey: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
  data: Uint8Array,
): Uint8Array {
  const keyIv = kdfa('sha256', hmacKey, 'CFB', nonceNewer, nonceOlder, 256)
  const key = keyIv.subarray(0, 16)
  const iv = keyIv.subarray(16, 32)
  const cipher = decrypt
    ? createDecipheriv('aes-128-cfb', key, iv)
    : createCipheriv('aes-128-cfb', key, iv)
  const out = Buffer.concat([cipher.update(data), cipher.final()])
  keyIv.fill(0)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Applies CFB in place to the data of the TPM2B at the start of `parameters`. */
function cryptFirstParameter(
  command: string,
  parameters: Uint8Array,
  transform: (data: Uint8Array) => Uint8Array,
): void {
  if (parameters.length < 2) throw malformedResponse(command, 'first-parameter')
  const size = new DataView(parameters.buffer, parameters.byteOffset).getUint16(0)
  if (2 + size > parameters.length) throw malformedResponse(command, 'first-parameter', { size })
  const data = parameters.subarray(2, 2 + size)
  const out = transform(data)
  data.set(out)
  out.fill(0)
}

/**
 * Sends one command in `session` and returns its verified, decrypted response parameters.
 * Updates the session's nonces.
 *
 * @throws {TpmSessionError} `reason: 'response-hmac'` when the response HMAC does not verify.
 * @throws the typed error of a failing response code (`refine` first).
 */
export async function runSessionCommand(
  send: Send,
  session: TpmSession,
  cmd: SessionCommand,
): Promise<SessionResponse> {
  const authValue = cmd.authValue ?? new Uint8Array(0)
  const hmacKey = Buffer.concat([session.sessionKey, authValue])
  try {
    session.nonceCaller = new Uint8Array(randomBytes(SHA256_SIZE))
    const attributes =
      (cmd.continueSession ? SESSION_ATTR.continueSession : 0) |
      (cmd.encryptCommand ? SESSION_ATTR.decrypt : 0) |
      (cmd.encryptResponse ? SESSION_ATTR.encrypt : 0) |
      (cmd.audit ? SESSION_ATTR.audit : 0)
    const parameters = cmd.parameters.slice()
    if (cmd.encryptCommand) {
      cryptFirstParameter(cmd.name, parameters, (d) =>
        cfb(false, hmacKey, session.nonceCaller, session.nonceTPM, d),
      )
    }
    const cp = createHash('sha256').update(u32(cmd.code))
    for (const h of cmd.handles) cp.update(h.name)
    const cpHash = cp.update(parameters).digest()
    const hmac = createHmac('sha256', hmacKey)
      .update(cpHash)
      .update(session.nonceCaller)
      .update(session.nonceTPM)
      .update(Uint8Array.of(attributes))
      .digest()
    const auth = new TpmWriter()
      .u32(session.handle)
      .sized(session.nonceCaller)
      .u8(attributes)
      .sized(hmac)
      .bytes()
    const body = new TpmWriter()
    for (const h of cmd.handles) body.u32(h.handle)
    body.u32(auth.length).raw(auth).raw(parameters)
    const bodyBytes = body.bytes()
    const command = new TpmWriter()
      .u16(TPM_ST_SESSIONS)
      .u32(HEADER_LENGTH + bodyBytes.length)
      .u32(cmd.code)
      .raw(bodyBytes)
      .bytes()
    parameters.fill(0)
    const response = await send(command)
    try {
      return parseResponse(cmd, session, hmacKey, response)
    } finally {
      response.fill(0)
    }
  } finally {
    hmacKey.fill(0)
  }
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, v >>> 0)
  return b
}

function parseResponse(
  cmd: SessionCommand,
  session: TpmSession,
  hmacKey: Uint8Array,
  response: Uint8Array,
): SessionResponse {
  const size = responseLength(response, cmd.name)
  if (size !== response.length)
    throw malformedResponse(cmd.name, 'length', { size, length: response.length })
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength)
  const tag = view.getUint16(0)
  const rc = view.getUint32(6)
  if (rc !== 0) {
    if (tag !== TPM_ST_NO_SESSIONS || size !== HEADER_LENGTH)
      throw malformedResponse(cmd.name, 'error-layout')
    throw responseCodeError(cmd.name, rc, cmd.refine)
  }
  if (tag !== TPM_ST_SESSIONS) throw malformedResponse(cmd.name, 'tag')
  const r = new TpmResponseReader(response, cmd.name, HEADER_LENGTH)
  const handles: number[] = []
  for (let i = 0; i < (cmd.responseHandles ?? 0); i++) handles.push(r.u32('handle'))
  const parameterSize = r.u32('parameterSize')
  const parameters = r.raw('parameters', parameterSize)
  const nonceTPM = r.sized('nonceTPM', 64)
  const attributes = r.u8('sessionAttributes')
  const hmac = r.sized('hmac', 64)
  r.end()
  const rpHash = createHash('sha256')
    .update(u32(0))
    .update(u32(cmd.code))
    .update(parameters)
    .digest()
  const expected = createHmac('sha256', hmacKey)
    .update(rpHash)
    .update(nonceTPM)
    .update(session.nonceCaller)
    .update(Uint8Array.of(attributes))
    .digest()
  if (hmac.length !== expected.length || !timingSafeEqual(hmac, expected)) {
    parameters.fill(0)
    throw new TpmSessionError('The TPM response does not carry a valid session HMAC', {
      details: { reason: 'response-hmac', command: cmd.name },
      hint: 'The response was altered on its way, or the TPM is not the one holding the pinned key. Nothing from it was used.',
    })
  }
  session.nonceTPM = nonceTPM
  if (cmd.encryptResponse) {
    if ((attributes & SESSION_ATTR.encrypt) === 0)
      throw malformedResponse(cmd.name, 'not-encrypted')
    cryptFirstParameter(cmd.name, parameters, (d) =>
      cfb(true, hmacKey, session.nonceTPM, session.nonceCaller, d),
    )
  }
  return { handles, parameters }
}
