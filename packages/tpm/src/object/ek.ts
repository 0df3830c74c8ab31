/**
 * The TPM's endorsement key and credential activation (TPM 2.0 Part 1 §24, Part 3 §12.5,
 * §23.4; TCG EK Credential Profile 2.x): what proves that a key the caller is about to trust
 * sits in the same TPM as an EK its maker certified (ADR 0097).
 *
 * - {@link readEkCertificateNv}: the maker's EK certificate from NV (RSA 2048: `0x01c00002`);
 * - {@link createEkPrimary}: the RSA EK recreated from the TCG default template (L-1) under the
 *   endorsement hierarchy (empty endorsement password, as `tpm2_createek` assumes);
 * - {@link activateCredential}: `TPM2_ActivateCredential` with the EK authorized by its policy,
 *   `PolicySecret(TPM_RH_ENDORSEMENT)`, in an unsalted policy session.
 *
 * None of these answers is authenticated: the caller makes the credential in software to the EK
 * public key of the VERIFIED certificate, for the name of the key it wants to trust. Only the TPM
 * holding that EK's private key can unwrap it, and it does so only when the object at the
 * activate handle has that name.
 */
import { randomBytes } from 'node:crypto'
import { TpmCommandError } from '../errors.ts'
import { TpmWriter } from '../marshal.ts'
import { nvReadPublic, TPMA_NV } from '../nv/nv.ts'
import { passwordCommand, passwordResponse } from '../policy/nv.ts'
import { type DecodedResponseCode, TPM_RC } from '../rc.ts'
import { TPM_ALG, TPM_CC, TPM_RH_NULL, TPM_SE } from '../session/constants.ts'
import { flushContext } from '../session/session.ts'
import { parseRsaPublic, type RsaKeyPublic, TPMA_OBJECT } from './public.ts'
import { plainCommand, plainResponse, type Send } from './read-public.ts'

/** The TCG EK Credential Profile's NV index of the RSA 2048 EK certificate. */
export const EK_RSA_CERTIFICATE_INDEX = 0x01c00002
/** The endorsement hierarchy's handle. */
export const TPM_RH_ENDORSEMENT = 0x4000000b

/** The default EK template's authPolicy: `PolicySecret(TPM_RH_ENDORSEMENT)`, SHA-256. */
export const EK_AUTH_POLICY = new Uint8Array(
  Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex'),
)

/** fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt. */
const EK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt

const TPM_CC_EK = { CreatePrimary: 0x131, PolicySecret: 0x151, ActivateCredential: 0x147 } as const
/** Bytes one NV_Read asks for: at most the smallest MAX_NV_BUFFER_SIZE of common TPMs. */
const NV_CHUNK = 768

/**
 * The TPMT_PUBLIC of the RSA 2048 EK (template L-1) with `modulus` as its unique field: the
 * template itself (256 zero bytes) to create it, or a certificate's modulus to name it.
 */
export function ekRsaPublicArea(modulus: Uint8Array = new Uint8Array(256)): Uint8Array {
  return new TpmWriter()
    .u16(TPM_ALG.RSA)
    .u16(TPM_ALG.SHA256)
    .u32(EK_ATTRIBUTES)
    .sized(EK_AUTH_POLICY)
    .u16(TPM_ALG.AES)
    .u16(128)
    .u16(TPM_ALG.CFB)
    .u16(TPM_ALG.NULL)
    .u16(2048)
    .u32(0)
    .sized(modulus)
    .bytes()
}

/**
 * The RSA EK certificate (DER) in NV, or `undefined` when the index is not defined (a TPM
 * whose maker wrote none, swtpm without `--create-ek-cert`). Read in chunks, authorized by the
 * index itself (the profile's AUTHREAD with an empty authValue) or else by the owner (empty
 * password); NV areas are often padded, so only the leading DER SEQUENCE is kept.
 */
export async function readEkCertificateNv(
  send: Send,
  index: number = EK_RSA_CERTIFICATE_INDEX,
): Promise<Uint8Array | undefined> {
  const nv = await nvReadPublic(send, index)
  if (nv === undefined) return undefined
  const authHandle = nv.public.attributes & TPMA_NV.authRead ? index : 0x40000001
  const out = new Uint8Array(nv.public.dataSize)
  for (let at = 0; at < out.length; ) {
    const size = Math.min(NV_CHUNK, out.length - at)
    const parameters = new TpmWriter().u16(size).u16(at).bytes()
    const r = passwordResponse(
      'TPM2_NV_Read',
      await send(passwordCommand(TPM_CC_NV_READ, [authHandle, index], 1, parameters)),
    )
    const data = r.sized('data', size)
    out.set(data, at)
    at += data.length
    if (data.length === 0) break
  }
  return derSequence(out)
}

const TPM_CC_NV_READ = 0x14e

/**
 * The leading DER SEQUENCE of `bytes` (its tag and length say how long it is): NV indices are
 * often larger than the certificate they hold and padded. Anything else is returned as is.
 */
export function derSequence(bytes: Uint8Array): Uint8Array {
  if (bytes[0] !== 0x30 || bytes.length < 2) return bytes
  const first = bytes[1] as number
  if (first < 0x80) return bytes.subarray(0, 2 + first)
  const octets = first & 0x7f
  if (octets === 0 || octets > 3 || bytes.length < 2 + octets) return bytes
  let length = 0
  for (let i = 0; i < octets; i++) length = (length << 8) | (bytes[2 + i] as number)
  return bytes.subarray(0, Math.min(bytes.length, 2 + octets + length))
}

/**
 * `TPM2_CreatePrimary` of the RSA EK under the endorsement hierarchy: the same key every time
 * (derived from the endorsement seed and the template). The caller flushes the handle.
 * @throws the typed error of a failing response (`BAD_AUTH` when the endorsement hierarchy has
 *   a password).
 */
export async function createEkPrimary(
  send: Send,
): Promise<{ handle: number; public: RsaKeyPublic }> {
  const parameters = new TpmWriter()
    .sized(new TpmWriter().sized(new Uint8Array(0)).sized(new Uint8Array(0)).bytes())
    .sized(ekRsaPublicArea())
    .sized(new Uint8Array(0)) // outsideInfo
    .u32(0) // creationPCR: none
    .bytes()
  const response = await send(
    passwordCommand(TPM_CC_EK.CreatePrimary, [TPM_RH_ENDORSEMENT], 1, parameters),
  )
  // The object handle precedes parameterSize: read it, then let passwordResponse parse the rest.
  const handle = new DataView(response.buffer, response.byteOffset).getUint32(10)
  const withoutHandle = new Uint8Array(response.length - 4)
  withoutHandle.set(response.subarray(0, 10))
  withoutHandle.set(response.subarray(14), 10)
  new DataView(withoutHandle.buffer).setUint32(2, withoutHandle.length)
  const rc = new DataView(response.buffer, response.byteOffset).getUint32(6)
  const r = passwordResponse('TPM2_CreatePrimary', rc === 0 ? withoutHandle : response)
  const pub = parseRsaPublic(r.sized('outPublic', 1024))
  return { handle, public: pub }
}

/**
 * `TPM2_ActivateCredential(activateHandle, ekHandle, credentialBlob, secret)`: the secret the
 * credential wraps, which the TPM gives back only when it holds the EK's private key and the
 * object at `activateHandle` has the name the credential was made for. The activated object is
 * authorized by its empty authValue (ADMIN role, no `adminWithPolicy`), the EK by
 * `PolicySecret(TPM_RH_ENDORSEMENT)`.
 *
 * @param credentialBlob TPM2B_ID_OBJECT, with its size (what `makeCredential` returns).
 * @param secret TPM2B_ENCRYPTED_SECRET, with its size.
 * @throws {TpmCommandError} `INTEGRITY` (`details.base` 0x09f) when the credential is for
 *   another object or another EK; the typed error of any other failure.
 */
export async function activateCredential(
  send: Send,
  o: {
    activateHandle: number
    ekHandle: number
    credentialBlob: Uint8Array
    secret: Uint8Array
  },
): Promise<Uint8Array> {
  const session = await startPolicySession(send)
  try {
    const policySecret = new TpmWriter()
      .sized(new Uint8Array(0)) // nonceTPM: no freshness needed, the session is ours
      .sized(new Uint8Array(0)) // cpHashA
      .sized(new Uint8Array(0)) // policyRef
      .u32(0) // expiration
      .bytes()
    passwordResponse(
      'TPM2_PolicySecret',
      await send(
        passwordCommand(TPM_CC_EK.PolicySecret, [TPM_RH_ENDORSEMENT, session], 1, policySecret),
      ),
    )
    const auth = new TpmWriter()
      .u32(TPM_RS_PW)
      .sized(new Uint8Array(0))
      .u8(0)
      .sized(new Uint8Array(0))
      .u32(session)
      .sized(new Uint8Array(0))
      .u8(0) // not continueSession: the TPM flushes it on success
      .sized(new Uint8Array(0)) // a policy session without PolicyAuthValue carries no HMAC
      .bytes()
    const body = new TpmWriter()
      .u32(o.activateHandle)
      .u32(o.ekHandle)
      .u32(auth.length)
      .raw(auth)
      .raw(o.credentialBlob)
      .raw(o.secret)
      .bytes()
    const command = new TpmWriter()
      .u16(0x8002)
      .u32(10 + body.length)
      .u32(TPM_CC_EK.ActivateCredential)
      .raw(body)
      .bytes()
    const r = passwordResponse('TPM2_ActivateCredential', await send(command), credentialRefused)
    return r.sized('certInfo', 64)
  } finally {
    await flushContext(send, session)
  }
}

const TPM_RS_PW = 0x40000009

/** An unsalted, unbound policy session (nothing in it is secret: PolicySecret authorizes). */
async function startPolicySession(send: Send): Promise<number> {
  const parameters = new TpmWriter()
    .sized(new Uint8Array(randomBytes(16))) // nonceCaller: at least 16 bytes
    .sized(new Uint8Array(0)) // no salt
    .u8(TPM_SE.POLICY)
    .u16(TPM_ALG.NULL)
    .u16(TPM_ALG.SHA256)
    .bytes()
  const r = plainResponse(
    'TPM2_StartAuthSession',
    await send(plainCommand(TPM_CC.StartAuthSession, [TPM_RH_NULL, TPM_RH_NULL], parameters)),
  )
  return r.u32('sessionHandle')
}

/**
 * The TPM's refusal of a credential's blob or secret: `INTEGRITY` (made for another object's
 * name), `VALUE`/`SIZE`/`KEY`/`FAILURE` (its seed encrypted to another EK).
 */
function credentialRefused(d: DecodedResponseCode, details: Record<string, unknown>) {
  const onParameters = d.subject === 'parameter' && (d.n === 1 || d.n === 2)
  const refused =
    (onParameters &&
      [TPM_RC.INTEGRITY, TPM_RC.VALUE, TPM_RC.SIZE, TPM_RC.KEY].includes(d.base as 0x84)) ||
    d.base === TPM_RC.INTEGRITY ||
    d.base === TPM_RC.FAILURE
  if (!refused) return undefined
  return new TpmCommandError('The TPM did not activate the credential', {
    details: { ...details, reason: 'credential-refused' },
    hint: 'The object at the activate handle is not the one the credential names, or the TPM does not hold the EK it was made for.',
  })
}
