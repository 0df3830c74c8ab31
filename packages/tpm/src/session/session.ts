/**
 * Salted sessions (TPM 2.0 Part 1 §19.6, Part 3 §11.1 `TPM2_StartAuthSession`): the caller
 * picks a random salt, encrypts it to a TPM-resident RSA key with OAEP (the key's name hash,
 * label "SECRET"), and both sides derive
 * `sessionKey = KDFa(SHA-256, salt, "ATH", nonceTPM, nonceCaller, 256)`.
 * Only the TPM that holds the salt key's private half learns the salt, so someone on the bus
 * can neither read what the session encrypts nor forge its HMACs. The session's symmetric
 * algorithm is AES-128-CFB, used for parameter encryption (see `command.ts`).
 */
import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import { TpmSessionError } from '../errors.ts'
import { TpmWriter } from '../marshal.ts'
import { type RsaKeyPublic, rsaPublicKeyObject } from '../object/public.ts'
import { plainCommand, plainResponse, type Send } from '../object/read-public.ts'
import { responseCodeError, TPM_RC } from '../rc.ts'
import { AES128_BITS, SHA256_SIZE, TPM_ALG, TPM_CC, TPM_RH_NULL, TPM_SE } from './constants.ts'
import { kdfa } from './kdfa.ts'

/** The label of a salt encrypted with RSA-OAEP (Part 1 §11.4.10.3: "SECRET" and its NUL). */
const SALT_LABEL = Buffer.from('SECRET\0', 'latin1')

/** A live session: what both ends know. Mutable nonces roll with every command. */
export interface TpmSession {
  readonly handle: number
  readonly kind: 'hmac' | 'policy'
  /** KDFa(salt, "ATH", …): never leaves this process. */
  readonly sessionKey: Uint8Array
  nonceCaller: Uint8Array
  nonceTPM: Uint8Array
}

/** The key the session is salted to: its persistent handle and its PINNED public area. */
export interface SaltKey {
  readonly handle: number
  readonly public: RsaKeyPublic
}

/**
 * Starts a salted, unbound session (HMAC or policy) with AES-128-CFB parameter encryption and
 * SHA-256 HMACs.
 *
 * @throws {TpmSessionError} `reason: 'salt-refused'`: the TPM could not decrypt the salt, so
 *   the key at the handle is not the pinned key.
 * @throws the typed error of any other failure (`TpmBusyError` when out of session slots).
 */
export async function startSaltedSession(
  send: Send,
  saltKey: SaltKey,
  kind: 'hmac' | 'policy' = 'hmac',
): Promise<TpmSession> {
  if (saltKey.public.nameAlg !== TPM_ALG.SHA256) {
    throw new TpmSessionError('The salt key must have a SHA-256 name', {
      details: { reason: 'salt-key-algorithm', nameAlg: saltKey.public.nameAlg },
    })
  }
  const salt = randomBytes(SHA256_SIZE)
  const nonceCaller = new Uint8Array(randomBytes(SHA256_SIZE))
  try {
    const encryptedSalt = publicEncrypt(
      {
        key: rsaPublicKeyObject(saltKey.public),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: 'sha256',
        oaepLabel: SALT_LABEL,
      },
      salt,
    )
    const parameters = new TpmWriter()
      .sized(nonceCaller)
      .sized(encryptedSalt)
      .u8(kind === 'hmac' ? TPM_SE.HMAC : TPM_SE.POLICY)
      .u16(TPM_ALG.AES)
      .u16(AES128_BITS)
      .u16(TPM_ALG.CFB)
      .u16(TPM_ALG.SHA256)
      .bytes()
    const command = plainCommand(TPM_CC.StartAuthSession, [saltKey.handle, TPM_RH_NULL], parameters)
    const response = await send(command)
    let r: ReturnType<typeof plainResponse>
    try {
      r = plainResponse('TPM2_StartAuthSession', response)
    } catch (err) {
      const rc = new DataView(response.buffer, response.byteOffset, response.byteLength).getUint32(
        6,
      )
      throw saltRefused(rc, saltKey.handle) ?? err
    }
    const handle = r.u32('sessionHandle')
    const nonceTPM = r.sized('nonceTPM', 64)
    r.end()
    if (nonceTPM.length < 16) {
      throw new TpmSessionError('The TPM answered with a nonce that is too short', {
        details: { reason: 'nonce', length: nonceTPM.length },
      })
    }
    const sessionKey = kdfa('sha256', salt, 'ATH', nonceTPM, nonceCaller, SHA256_SIZE * 8)
    return { handle, kind, sessionKey, nonceCaller, nonceTPM }
  } finally {
    salt.fill(0)
  }
}

/**
 * A failed salt decryption: the TPM answers a value, size or key error on `encryptedSalt`
 * (parameter 2), or a bare FAILURE (libtpms on an OAEP decoding failure).
 */
function saltRefused(rc: number, handle: number): TpmSessionError | undefined {
  const error = responseCodeError('TPM2_StartAuthSession', rc)
  const d = error.details as { base?: string; parameter?: number }
  const base = Number(d.base)
  const onSalt =
    (d.parameter === 2 &&
      [TPM_RC.VALUE, TPM_RC.SIZE, TPM_RC.KEY, TPM_RC.SCHEME].includes(base as 0x84)) ||
    base === TPM_RC.FAILURE
  if (!onSalt) return undefined
  return new TpmSessionError(
    'The TPM could not decrypt the session salt: the key at the handle is not the pinned key',
    {
      details: { ...error.details, reason: 'salt-refused', handle: `0x${handle.toString(16)}` },
      hint: 'Someone replaced the key (or sits on the bus). Nothing was sent. Check the TPM; recover from the paper words if the key is gone.',
    },
  )
}

/** `TPM2_FlushContext` of a session or transient object; errors are ignored (best effort). */
export async function flushContext(send: Send, handle: number): Promise<void> {
  try {
    const w = new TpmWriter().u32(handle).bytes()
    const response = await send(plainCommand(TPM_CC.FlushContext, [], w))
    response.fill(0)
  } catch {
    // The handle may already be gone (continueSession cleared, or the RM flushed it).
  }
}

/** Zeroes a session's secrets once it is done with. */
export function forgetSession(session: TpmSession): void {
  session.sessionKey.fill(0)
}
