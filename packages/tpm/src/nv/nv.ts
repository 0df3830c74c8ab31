/**
 * NV indices (TPM 2.0 Part 3 §31): what a monotonic approval epoch needs.
 *
 * - `TPM2_NV_DefineSpace` / `TPM2_NV_UndefineSpace` under the owner hierarchy (password
 *   session, the owner's authValue — empty on a Pi unless the owner set one);
 * - `TPM2_NV_ReadPublic` (no session: a caller compares the name with the one it computes);
 * - `TPM2_NV_Increment` of a counter index whose write policy is PolicySigned by the owner's
 *   key (`TPMA_NV_POLICYWRITE`): the owner signs the TPM's nonce and the command's cpHash, in a
 *   policy session salted to the pinned wrapping key;
 * - `TPM2_NV_Read` of the counter in an HMAC session salted to the pinned key, so the value the
 *   owner signs comes in an answer the bus cannot forge;
 * - `TPM2_PolicyNV` (Part 3 §23.9) in a policy session, read-authorized by the index's empty
 *   authValue (`TPMA_NV_AUTHREAD`, password session).
 *
 * An index's name is `nameAlg ‖ H(TPMS_NV_PUBLIC)`: it covers the index handle, its attributes
 * (`TPMA_NV_WRITTEN` included) and its authPolicy, so a policy that names the index (PolicyNV)
 * is bound to all of them.
 */
import { createHash } from 'node:crypto'
import { TpmPolicyError } from '../errors.ts'
import { malformedResponse } from '../frame.ts'
import { TpmResponseReader, TpmWriter } from '../marshal.ts'
import { plainCommand, plainResponse, type Send } from '../object/read-public.ts'
import { type P256PublicKey, p256VerifyKeyPublic } from '../policy/authorize.ts'
import { passwordCommand, passwordResponse, responseCode } from '../policy/nv.ts'
import { decodeResponseCode, responseCodeDetails, TPM_RC } from '../rc.ts'
import { runSessionCommand } from '../session/command.ts'
import { TPM_ALG, TPM_CC, TPM_RH_OWNER } from '../session/constants.ts'
import {
  flushContext,
  forgetSession,
  type SaltKey,
  startSaltedSession,
  type TpmSession,
} from '../session/session.ts'

/** TPMA_NV bits (Part 2 §13.4). */
export const TPMA_NV = {
  ppWrite: 0x00000001,
  ownerWrite: 0x00000002,
  authWrite: 0x00000004,
  policyWrite: 0x00000008,
  /** TPM_NT_COUNTER in bits 7:4. */
  counter: 0x00000010,
  /** TPM_NT field mask. */
  typeMask: 0x000000f0,
  policyDelete: 0x00000400,
  writeLocked: 0x00000800,
  writeAll: 0x00001000,
  writeDefine: 0x00002000,
  writeStClear: 0x00004000,
  globalLock: 0x00008000,
  ppRead: 0x00010000,
  ownerRead: 0x00020000,
  authRead: 0x00040000,
  policyRead: 0x00080000,
  noDA: 0x02000000,
  orderly: 0x04000000,
  clearStClear: 0x08000000,
  readLocked: 0x10000000,
  written: 0x20000000,
  platformCreate: 0x40000000,
  readStClear: 0x80000000,
} as const

/** First and last NV index of the owner range (Part 2 §7.4, TCG handle registry). */
export const NV_OWNER_FIRST = 0x01800000
export const NV_OWNER_LAST = 0x01bfffff

/** TPMS_NV_PUBLIC, decoded. */
export interface NvPublic {
  readonly index: number
  readonly nameAlg: number
  readonly attributes: number
  readonly authPolicy: Uint8Array
  readonly dataSize: number
}

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** TPMS_NV_PUBLIC, marshalled. */
export function marshalNvPublic(pub: NvPublic): Uint8Array {
  return new TpmWriter()
    .u32(pub.index)
    .u16(pub.nameAlg)
    .u32(pub.attributes)
    .sized(pub.authPolicy)
    .u16(pub.dataSize)
    .bytes()
}

/** The index's name: `nameAlg ‖ SHA-256(TPMS_NV_PUBLIC)` (SHA-256 name only). */
export function nvName(pub: NvPublic): Uint8Array {
  return new TpmWriter()
    .u16(TPM_ALG.SHA256)
    .raw(sha256(marshalNvPublic(pub)))
    .bytes()
}

function parseNvPublic(command: string, bytes: Uint8Array): NvPublic {
  const r = new TpmResponseReader(bytes, command)
  const pub = {
    index: r.u32('nvPublic.nvIndex'),
    nameAlg: r.u16('nvPublic.nameAlg'),
    attributes: r.u32('nvPublic.attributes'),
    authPolicy: r.sized('nvPublic.authPolicy', 64),
    dataSize: r.u16('nvPublic.dataSize'),
  }
  r.end()
  return pub
}

/**
 * `TPM2_NV_DefineSpace` under the owner hierarchy (empty owner password), with an empty
 * authValue.
 * @throws {TpmCommandError} `NV_DEFINED` (`details.base` 0x14c) when the index exists; the
 *   owner's authorization failing (`BAD_AUTH`: the owner set a password) and other TPM errors.
 */
export async function nvDefineSpace(send: Send, pub: NvPublic): Promise<void> {
  const publicInfo = marshalNvPublic(pub)
  const parameters = new TpmWriter().sized(new Uint8Array(0)).sized(publicInfo).bytes()
  passwordResponse(
    'TPM2_NV_DefineSpace',
    await send(passwordCommand(TPM_CC.NV_DefineSpace, [TPM_RH_OWNER], 1, parameters)),
  ).end()
}

/** `TPM2_NV_UndefineSpace` of an owner index (empty owner password). */
export async function nvUndefineSpace(send: Send, index: number): Promise<void> {
  passwordResponse(
    'TPM2_NV_UndefineSpace',
    await send(
      passwordCommand(TPM_CC.NV_UndefineSpace, [TPM_RH_OWNER, index], 1, new Uint8Array(0)),
    ),
  ).end()
}

/**
 * `TPM2_NV_ReadPublic`, no session: `undefined` when no index is defined at `index`. The name
 * is checked against the public area; the answer itself is not authenticated (compare the
 * name with one computed from what the caller expects).
 */
export async function nvReadPublic(
  send: Send,
  index: number,
): Promise<{ public: NvPublic; name: Uint8Array } | undefined> {
  const response = await send(plainCommand(TPM_CC.NV_ReadPublic, [index], new Uint8Array(0)))
  const rc = responseCode('TPM2_NV_ReadPublic', response)
  if (rc !== 0) {
    const d = decodeResponseCode(rc)
    if (d.base === TPM_RC.HANDLE) return undefined
  }
  const r = plainResponse('TPM2_NV_ReadPublic', response)
  const bytes = r.sized('nvPublic', 256)
  const name = r.sized('nvName', 66)
  r.end()
  const pub = parseNvPublic('TPM2_NV_ReadPublic', bytes)
  if (pub.index !== index || !Buffer.from(nvName(pub)).equals(Buffer.from(name))) {
    throw malformedResponse('TPM2_NV_ReadPublic', 'name')
  }
  return { public: pub, name }
}

/** The policyDigest after `TPM2_PolicySigned(authObject = keyName, policyRef)` (Part 3 §23.3). */
export function policySignedDigest(
  previous: Uint8Array,
  keyName: Uint8Array,
  policyRef: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return sha256(sha256(previous, u32(TPM_CC.PolicySigned), keyName), policyRef)
}

function u32(v: number): Uint8Array {
  return new TpmWriter().u32(v).bytes()
}

/** `aHash` of PolicySigned (Part 3 §23.3): `H(nonceTPM ‖ expiration ‖ cpHashA ‖ policyRef)`. */
export function policySignedHash(
  nonceTPM: Uint8Array,
  expiration: number,
  cpHashA: Uint8Array,
  policyRef: Uint8Array,
): Uint8Array {
  return sha256(nonceTPM, u32(expiration), cpHashA, policyRef)
}

/** ECDSA-P256-SHA256 signature, r ‖ s halves. */
export type P256Sign = (digest: Uint8Array) => { r: Uint8Array; s: Uint8Array }

/**
 * Runs `TPM2_PolicySigned` in `session`: loads the owner's key, has `sign` sign the session's
 * nonceTPM with `cpHashA` (binding the authorization to ONE command) and `policyRef`, and
 * flushes the key.
 */
export async function satisfyPolicySigned(
  send: Send,
  session: TpmSession,
  authKey: P256PublicKey,
  sign: P256Sign,
  cpHashA: Uint8Array,
  policyRef: Uint8Array = new Uint8Array(0),
): Promise<void> {
  const { publicArea, name } = p256VerifyKeyPublic(authKey)
  const load = new TpmWriter().sized(new Uint8Array(0)).sized(publicArea).u32(TPM_RH_OWNER).bytes()
  const r = plainResponse(
    'TPM2_LoadExternal',
    await send(plainCommand(TPM_CC.LoadExternal, [], load)),
  )
  const keyHandle = r.u32('objectHandle')
  const loadedName = r.sized('name', 66)
  r.end()
  try {
    if (!Buffer.from(loadedName).equals(Buffer.from(name))) {
      throw malformedResponse('TPM2_LoadExternal', 'name')
    }
    const expiration = 0
    const signature = sign(policySignedHash(session.nonceTPM, expiration, cpHashA, policyRef))
    const parameters = new TpmWriter()
      .sized(session.nonceTPM)
      .sized(cpHashA)
      .sized(policyRef)
      .u32(expiration)
      .u16(TPM_ALG.ECDSA)
      .u16(TPM_ALG.SHA256)
      .sized(signature.r)
      .sized(signature.s)
      .bytes()
    const response = await send(
      plainCommand(TPM_CC.PolicySigned, [keyHandle, session.handle], parameters),
    )
    const rc = responseCode('TPM2_PolicySigned', response)
    if (rc !== 0 && decodeResponseCode(rc).base === TPM_RC.SIGNATURE) {
      throw new TpmPolicyError('The TPM refuses the owner signature on the NV write', {
        details: { reason: 'approval-invalid', ...responseCodeDetails('TPM2_PolicySigned', rc) },
        hint: 'Use the paper words of this node’s owner.',
      })
    }
    const out = plainResponse('TPM2_PolicySigned', response)
    out.sized('timeout', 64)
    out.u16('policyTicket.tag')
    out.u32('policyTicket.hierarchy')
    out.sized('policyTicket.digest', 64)
    out.end()
  } finally {
    await flushContext(send, keyHandle)
  }
}

/** `cpHash` of a command with no parameters on `names` (what PolicySigned's cpHashA binds). */
export function cpHashOf(
  code: number,
  names: readonly Uint8Array[],
  parameters = new Uint8Array(0),
) {
  return sha256(u32(code), ...names, parameters)
}

/**
 * `TPM2_NV_Increment` of the counter at `index` (current name `name`), write-authorized by
 * PolicySigned of `authKey` (`TPMA_NV_POLICYWRITE`, authPolicy = PolicySigned(authKey,
 * policyRef)), in a policy session salted to `saltKey`. `sign` signs with the owner's key.
 */
export async function nvIncrementSigned(
  send: Send,
  saltKey: SaltKey,
  index: number,
  name: Uint8Array,
  authKey: P256PublicKey,
  sign: P256Sign,
  policyRef: Uint8Array = new Uint8Array(0),
): Promise<void> {
  const session = await startSaltedSession(send, saltKey, 'policy')
  let done = false
  try {
    await satisfyPolicySigned(
      send,
      session,
      authKey,
      sign,
      cpHashOf(TPM_CC.NV_Increment, [name, name]),
      policyRef,
    )
    await runSessionCommand(send, session, {
      name: 'TPM2_NV_Increment',
      code: TPM_CC.NV_Increment,
      handles: [
        { handle: index, name },
        { handle: index, name },
      ],
      parameters: new Uint8Array(0),
    })
    done = true
  } finally {
    forgetSession(session)
    if (!done) await flushContext(send, session.handle)
  }
}

/**
 * Reads the 8-byte counter at `index` (its expected name `name`, `TPMA_NV_AUTHREAD`, empty
 * authValue) in an HMAC session salted to `saltKey`: the answer's HMAC proves it comes from
 * the TPM holding the salt key, about the index with that name (the name is in the HMAC).
 * @throws {TpmSessionError} `response-hmac` for an altered answer or another index at the handle.
 */
export async function nvReadCounterInSession(
  send: Send,
  saltKey: SaltKey,
  index: number,
  name: Uint8Array,
): Promise<bigint> {
  const session = await startSaltedSession(send, saltKey, 'hmac')
  let done = false
  try {
    const response = await runSessionCommand(send, session, {
      name: 'TPM2_NV_Read',
      code: TPM_CC.NV_Read,
      handles: [
        { handle: index, name },
        { handle: index, name },
      ],
      parameters: new TpmWriter().u16(8).u16(0).bytes(),
    })
    done = true
    const r = new TpmResponseReader(response.parameters, 'TPM2_NV_Read')
    const data = r.sized('data', 8)
    r.end()
    if (data.length !== 8) throw malformedResponse('TPM2_NV_Read', 'data', { size: data.length })
    return new DataView(data.buffer, data.byteOffset).getBigUint64(0)
  } finally {
    forgetSession(session)
    if (!done) await flushContext(send, session.handle)
  }
}

/** `TPM2_PolicyGetDigest`: the session's current policyDigest (tests compare it with software). */
export async function policyGetDigest(send: Send, session: TpmSession): Promise<Uint8Array> {
  const r = plainResponse(
    'TPM2_PolicyGetDigest',
    await send(plainCommand(TPM_CC.PolicyGetDigest, [session.handle], new Uint8Array(0))),
  )
  const digest = r.sized('policyDigest', 64)
  r.end()
  return digest
}
