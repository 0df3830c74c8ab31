/**
 * Satisfying an authorized PCR policy in a policy session (Part 3 §23.7 PolicyPCR, §23.16
 * PolicyAuthorize, §17.5 VerifySignature, §12.3 LoadExternal):
 *
 * 1. `TPM2_LoadExternal` the owner's P-256 authorizing key (public only, owner hierarchy);
 * 2. `TPM2_VerifySignature` of `aHash = H(approvedPolicy)` → a ticket; the key is flushed;
 * 3. `TPM2_PolicyPCR(approved pcrDigest, pcrs)`: the TPM refuses when the PCRs differ;
 * 3b. with an epoch (ADR 0094): `TPM2_PolicyNV(epoch index, EQ epoch)`: the TPM refuses an
 *    approval whose epoch is not the counter's value, i.e. any approval but the newest;
 * 4. `TPM2_PolicyAuthorize(approvedPolicy, policyRef, keySign.name, ticket)`.
 *
 * The session's digest then equals the key's `authPolicy` (`policyAuthorizeDigest`).
 */
import { createHash } from 'node:crypto'
import { TpmPolicyError } from '../errors.ts'
import { malformedResponse } from '../frame.ts'
import { TpmWriter } from '../marshal.ts'
import { plainCommand, plainResponse, type Send } from '../object/read-public.ts'
import { decodeResponseCode, responseCodeDetails, responseCodeError, TPM_RC } from '../rc.ts'
import { TPM_ALG, TPM_CC, TPM_RH_OWNER } from '../session/constants.ts'
import { flushContext, type TpmSession } from '../session/session.ts'
import { counterBytes, policyNv, TPM_EO } from './nv.ts'
import { pcrSelection } from './pcr.ts'

/** NIST P-256 (TPM_ECC_NIST_P256). */
const TPM_ECC_NIST_P256 = 0x0003
/** TPMA_OBJECT sign | userWithAuth: an external verification key. */
const VERIFY_KEY_ATTRIBUTES = 0x00040000 | 0x00000040
const TPM_ST_VERIFIED = 0x8022

/** The owner's authorizing key: an uncompressed P-256 point. */
export interface P256PublicKey {
  readonly x: Uint8Array
  readonly y: Uint8Array
}

/** TPMT_PUBLIC of a P-256 ECDSA-SHA-256 verification key, and its name. */
export function p256VerifyKeyPublic(key: P256PublicKey): {
  publicArea: Uint8Array
  name: Uint8Array
} {
  if (key.x.length !== 32 || key.y.length !== 32) {
    throw new TpmPolicyError('The authorizing key is not a P-256 point', {
      details: { reason: 'approval-invalid', x: key.x.length, y: key.y.length },
    })
  }
  const publicArea = new TpmWriter()
    .u16(TPM_ALG.ECC)
    .u16(TPM_ALG.SHA256)
    .u32(VERIFY_KEY_ATTRIBUTES)
    .sized(new Uint8Array(0))
    .u16(TPM_ALG.NULL) // symmetric
    .u16(TPM_ALG.ECDSA)
    .u16(TPM_ALG.SHA256)
    .u16(TPM_ECC_NIST_P256)
    .u16(TPM_ALG.NULL) // kdf
    .sized(key.x)
    .sized(key.y)
    .bytes()
  const name = new Uint8Array(34)
  new DataView(name.buffer).setUint16(0, TPM_ALG.SHA256)
  name.set(createHash('sha256').update(publicArea).digest(), 2)
  return { publicArea, name }
}

/** An approval: the policy the owner authorized and the owner's signature over `aHash`. */
export interface PolicyApproval {
  readonly pcrs: readonly number[]
  /** The PCR digest the owner approved. */
  readonly pcrDigest: Uint8Array
  /** `policyPcrDigest(pcrs, pcrDigest)`. */
  readonly approvedPolicy: Uint8Array
  readonly authKey: P256PublicKey
  /** ECDSA-P256-SHA256 signature over `approvalHash(approvedPolicy, policyRef)`, r ‖ s. */
  readonly signature: { readonly r: Uint8Array; readonly s: Uint8Array }
  /**
   * The policyRef the key's `PolicyAuthorize` names: empty for keys made before ADR 0094,
   * `EPOCH_POLICY_REF` for a key whose approvals carry an epoch.
   */
  readonly policyRef?: Uint8Array
  /**
   * ADR 0094: `approvedPolicy` is PolicyPCR then `PolicyNV(index, EQ value)` on the owner's
   * NV counter (its name `name`, `TPMA_NV_WRITTEN` set): valid only while the counter holds
   * `value`, so each new approval (the owner increments the counter) revokes the older ones.
   */
  readonly epoch?: { readonly index: number; readonly name: Uint8Array; readonly value: bigint }
}

/**
 * Loads the authorizing key, verifies the approval in the TPM and returns the ticket
 * (TPMT_TK_VERIFIED, marshalled) and the key's name. The transient key is flushed.
 * @throws {TpmPolicyError} `approval-invalid` when the TPM refuses the signature.
 */
export async function verifyApproval(
  send: Send,
  approval: PolicyApproval,
  aHash: Uint8Array,
): Promise<{ ticket: Uint8Array; keyName: Uint8Array }> {
  const { publicArea, name } = p256VerifyKeyPublic(approval.authKey)
  const load = new TpmWriter().sized(new Uint8Array(0)).sized(publicArea).u32(TPM_RH_OWNER).bytes()
  const r = plainResponse(
    'TPM2_LoadExternal',
    await send(plainCommand(TPM_CC.LoadExternal, [], load)),
  )
  const handle = r.u32('objectHandle')
  const loadedName = r.sized('name', 66)
  r.end()
  try {
    if (!Buffer.from(loadedName).equals(Buffer.from(name))) {
      throw malformedResponse('TPM2_LoadExternal', 'name')
    }
    const verify = new TpmWriter()
      .sized(aHash)
      .u16(TPM_ALG.ECDSA)
      .u16(TPM_ALG.SHA256)
      .sized(approval.signature.r)
      .sized(approval.signature.s)
      .bytes()
    const response = await send(plainCommand(TPM_CC.VerifySignature, [handle], verify))
    const rc = new DataView(response.buffer, response.byteOffset).getUint32(6)
    if (rc !== 0 && decodeResponseCode(rc).base === TPM_RC.SIGNATURE) {
      throw new TpmPolicyError('The PCR policy approval is not signed by the authorizing key', {
        details: { reason: 'approval-invalid', ...responseCodeDetails('TPM2_VerifySignature', rc) },
        hint: 'Authorize the PCR set again with the paper words (pi-node key-policy authorize).',
      })
    }
    const v = plainResponse('TPM2_VerifySignature', response)
    const tag = v.u16('validation.tag')
    const hierarchy = v.u32('validation.hierarchy')
    const digest = v.sized('validation.digest', 64)
    v.end()
    if (tag !== TPM_ST_VERIFIED) throw malformedResponse('TPM2_VerifySignature', 'ticket-tag')
    return { ticket: new TpmWriter().u16(tag).u32(hierarchy).sized(digest).bytes(), keyName: name }
  } finally {
    await flushContext(send, handle)
  }
}

/**
 * Runs PolicyPCR and PolicyAuthorize in `session` (a policy session).
 * @throws {TpmPolicyError} `pcr-mismatch` when the TPM's PCRs are not the approved ones.
 */
export async function satisfyAuthorizedPcrPolicy(
  send: Send,
  session: TpmSession,
  approval: PolicyApproval,
  verified: { ticket: Uint8Array; keyName: Uint8Array },
): Promise<void> {
  const pcr = new TpmWriter().sized(approval.pcrDigest).raw(pcrSelection(approval.pcrs)).bytes()
  const response = await send(plainCommand(TPM_CC.PolicyPCR, [session.handle], pcr))
  const rc = new DataView(response.buffer, response.byteOffset).getUint32(6)
  if (rc !== 0) {
    const d = decodeResponseCode(rc)
    if (d.base === TPM_RC.VALUE && d.subject === 'parameter' && d.n === 1) {
      throw new TpmPolicyError(
        'The TPM refuses: its PCRs are not the values the owner authorized',
        {
          details: {
            reason: 'pcr-mismatch',
            ...responseCodeDetails('TPM2_PolicyPCR', rc),
            pcrs: [...approval.pcrs],
          },
          hint: 'After an OS or firmware update, authorize the new PCR values with the paper words (pi-node key-policy authorize). Otherwise this Pi booted something else: recover from the paper words.',
        },
      )
    }
    throw responseCodeError('TPM2_PolicyPCR', rc)
  }
  plainResponse('TPM2_PolicyPCR', response).end()
  if (approval.epoch !== undefined) await satisfyEpoch(send, session, approval.epoch)
  const authorize = new TpmWriter()
    .sized(approval.approvedPolicy)
    .sized(approval.policyRef ?? new Uint8Array(0))
    .sized(verified.keyName)
    .raw(verified.ticket)
    .bytes()
  const authorized = await send(plainCommand(TPM_CC.PolicyAuthorize, [session.handle], authorize))
  const arc = new DataView(authorized.buffer, authorized.byteOffset).getUint32(6)
  if (arc !== 0 && approval.epoch !== undefined) {
    const d = decodeResponseCode(arc)
    // The session's digest is not the approved policy although PolicyPCR and PolicyNV passed:
    // the index at the handle has another name (redefined with other attributes or policy).
    if (d.base === TPM_RC.VALUE && d.subject === 'parameter' && d.n === 1) {
      throw new TpmPolicyError(
        'The TPM refuses: the NV epoch index is not the one the owner approved',
        {
          details: {
            reason: 'epoch-index-replaced',
            ...responseCodeDetails('TPM2_PolicyAuthorize', arc),
            index: `0x${approval.epoch.index.toString(16).padStart(8, '0')}`,
          },
          hint: 'Someone with owner authorization redefined the epoch index. Approve this boot again with the paper words (pi-node key-policy authorize): it defines the index afresh.',
        },
      )
    }
  }
  plainResponse('TPM2_PolicyAuthorize', authorized).end()
}

/** `TPM2_PolicyNV(epoch index, EQ epoch)`, its refusals said in the owner's terms. */
async function satisfyEpoch(
  send: Send,
  session: TpmSession,
  epoch: NonNullable<PolicyApproval['epoch']>,
): Promise<void> {
  const index = `0x${epoch.index.toString(16).padStart(8, '0')}`
  await policyNv(
    send,
    session,
    epoch.index,
    counterBytes(epoch.value),
    0,
    TPM_EO.EQ,
    (d, details) => {
      if (d.format === 0 && d.base === TPM_RC.POLICY) {
        return new TpmPolicyError(
          'The TPM refuses: this approval was superseded (the epoch counter has moved on)',
          {
            details: {
              ...details,
              reason: 'approval-superseded',
              index,
              epoch: String(epoch.value),
            },
            hint: 'The owner approved other PCR values since, or an old approval is being replayed. If this boot is yours, approve it again with the paper words (pi-node key-policy authorize).',
          },
        )
      }
      if (
        (d.format === 1 && d.base === TPM_RC.HANDLE) ||
        (d.format === 0 && d.base === TPM_RC.NV_UNINITIALIZED)
      ) {
        return new TpmPolicyError('The TPM refuses: the NV epoch index is missing', {
          details: { ...details, reason: 'epoch-index-missing', index },
          hint: 'Someone with owner authorization deleted it (or it was never written). Approve this boot again with the paper words (pi-node key-policy authorize): it defines the index afresh.',
        })
      }
      return undefined
    },
  )
}
