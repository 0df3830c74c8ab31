/**
 * The TPM key record: what the node pinned about its wrapping key at init, kept next to its
 * other state (JSON, mode 0600, written atomically). A key at the handle whose name differs
 * from the record is refused (`TpmSessionError`, `key-substituted`), and every unwrap session
 * is salted to the recorded public area, not to whatever the TPM reports.
 *
 * Format (SPEC.md "TPM key record"), version 1:
 * `{ "version": 1, "kind": "digicap/tpm2-key", "handle": "0x81000010", "keyId": "<hex>",
 *    "name": "<hex nameAlg‖SHA-256(TPMT_PUBLIC)>", "publicArea": "<hex TPMT_PUBLIC>" }`.
 * `publicArea` and `name` are absent for a key read through tpm2-tools (a TCTI without a
 * direct transport): then only `keyId` is compared.
 *
 * Version 2 = version 1 plus `policy`, for a PCR-bound key (its `authPolicy` is
 * PolicyAuthorize of the owner's authorizing key):
 * `"policy": { "pcrs": [0,…,7], "authKey": { "x": "<hex>", "y": "<hex>" }, "approval"?: {
 *    "pcrValues": { "0": "<hex>", … }, "pcrDigest": "<hex>", "approvedPolicy": "<hex>",
 *    "signature": { "r": "<hex>", "s": "<hex>" } } }`. An approval is checked in software
 * (digests and signature) when read; the TPM checks it again at every unwrap.
 *
 * Version 3 = version 2 for a rollback-protected key (ADR 0094: its `authPolicy` is
 * PolicyAuthorize(authKey, EPOCH_POLICY_REF)): `policy.epochIndex = { "handle": "0x018…",
 * "writeRef"?: "<hex 32 bytes>" }` (the NV counter; `writeRef` absent until the first
 * approval defines it) and, in the approval, `"epoch": "<decimal>"`: the counter value it is
 * bound to. An older reader refuses version 3 (`KEY_STORE_CORRUPT`), never ignores the epoch.
 */
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { nvName, type P256PublicKey, parseRsaPublic, type RsaKeyPublic } from '@digicap/tpm'
import { KeyStoreCorruptError } from '../errors.ts'
import { ensureDir, writeFileAtomic } from '../store/fs-atomic.ts'
import type { EkActivationRecord } from './ek-activation.ts'
import {
  approvalIsValid,
  EPOCH_POLICY_REF,
  epochIndexPublic,
  type PcrApproval,
} from './pcr-policy.ts'

export const TPM2_KEY_RECORD_KIND = 'digicap/tpm2-key'
/** The record's file name in a node's data folder. */
export const TPM2_KEY_RECORD_FILE = 'tpm2-key.json'

export interface Tpm2KeyRecord {
  /** 3 when `policy.epochIndex` is present, 2 when `policy` is, else 1. */
  version: 1 | 2 | 3
  kind: typeof TPM2_KEY_RECORD_KIND
  handle: string
  keyId: string
  name?: string
  publicArea?: string
  policy?: Tpm2KeyPolicy
  /**
   * How the key's TPM was checked when the key was pinned (ADR 0097); absent for a key pinned
   * before, or by a sealer not asked to check. An older reader ignores it (it is a report, the
   * pin itself is `name`).
   */
  ekActivation?: EkActivationRecord
}

/** The PCR policy of a PCR-bound key, decoded. */
export interface Tpm2KeyPolicy {
  pcrs: number[]
  authKey: P256PublicKey
  /** The PCR set the owner approved last; absent until the first approval. */
  approval?: PcrApproval
  /**
   * A rollback-protected key (ADR 0094): its NV epoch counter. `writeRef` (the counter's
   * PolicySigned policyRef, random per definition) is absent until an approval defines it.
   */
  epochIndex?: { handle: number; writeRef?: Uint8Array }
}

/** The written epoch counter's name of a policy, when it names one with its `writeRef`. */
export function epochIndexName(policy: Tpm2KeyPolicy): Uint8Array | undefined {
  const e = policy.epochIndex
  if (e?.writeRef === undefined) return undefined
  return nvName(epochIndexPublic(e.handle, policy.authKey, e.writeRef))
}

const nvHandleText = (h: number) => `0x${h.toString(16).padStart(8, '0')}`

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const fromHex = (h: unknown, len?: number): Uint8Array | undefined => {
  if (typeof h !== 'string' || !HEX.test(h) || h.length % 2 !== 0) return undefined
  if (len !== undefined && h.length !== len * 2) return undefined
  return new Uint8Array(Buffer.from(h, 'hex'))
}

function policyToJson(policy: Tpm2KeyPolicy): Record<string, unknown> {
  const a = policy.approval
  return {
    pcrs: policy.pcrs,
    authKey: { x: toHex(policy.authKey.x), y: toHex(policy.authKey.y) },
    ...(policy.epochIndex === undefined
      ? {}
      : {
          epochIndex: {
            handle: nvHandleText(policy.epochIndex.handle),
            ...(policy.epochIndex.writeRef === undefined
              ? {}
              : { writeRef: toHex(policy.epochIndex.writeRef) }),
          },
        }),
    ...(a === undefined
      ? {}
      : {
          approval: {
            pcrValues: Object.fromEntries([...a.pcrValues].map(([p, v]) => [String(p), toHex(v)])),
            pcrDigest: toHex(a.pcrDigest),
            approvedPolicy: toHex(a.approvedPolicy),
            signature: { r: toHex(a.signature.r), s: toHex(a.signature.s) },
            ...(a.epoch === undefined ? {} : { epoch: String(a.epoch.value) }),
          },
        }),
  }
}

/** Parsed JSON, walked with optional chaining; every leaf is checked where it is used. */
interface Loose {
  readonly [key: string]: Loose | undefined
}

function policyFromJson(file: string, v: unknown): Tpm2KeyPolicy {
  const p = v as Loose | undefined
  const pcrs = p?.pcrs
  if (
    !Array.isArray(pcrs) ||
    pcrs.length === 0 ||
    pcrs.some((n: unknown) => !Number.isInteger(n) || (n as number) < 0 || (n as number) > 23)
  )
    throw corrupt(file, 'policy.pcrs')
  const x = fromHex(p?.authKey?.x, 32)
  const y = fromHex(p?.authKey?.y, 32)
  if (x === undefined || y === undefined) throw corrupt(file, 'policy.authKey')
  const policy: Tpm2KeyPolicy = { pcrs: [...pcrs] as number[], authKey: { x, y } }
  if (p?.epochIndex !== undefined) {
    const handle = p.epochIndex?.handle
    if (typeof handle !== 'string' || !/^0x01[89ab][0-9a-f]{5}$/.test(handle))
      throw corrupt(file, 'policy.epochIndex.handle')
    const writeRef =
      p.epochIndex?.writeRef === undefined ? undefined : fromHex(p.epochIndex.writeRef, 32)
    if (p.epochIndex?.writeRef !== undefined && writeRef === undefined)
      throw corrupt(file, 'policy.epochIndex.writeRef')
    policy.epochIndex = {
      handle: Number.parseInt(handle, 16),
      ...(writeRef === undefined ? {} : { writeRef }),
    }
  }
  if (p?.approval === undefined) return policy
  const a = p.approval
  const values = new Map<number, Uint8Array>()
  for (const n of policy.pcrs) {
    const value = fromHex(a?.pcrValues?.[String(n)], 32)
    if (value === undefined) throw corrupt(file, 'policy.approval.pcrValues')
    values.set(n, value)
  }
  const pcrDigest = fromHex(a?.pcrDigest, 32)
  const approvedPolicy = fromHex(a?.approvedPolicy, 32)
  const r = fromHex(a?.signature?.r)
  const s = fromHex(a?.signature?.s)
  if (!pcrDigest || !approvedPolicy || !r || !s || r.length > 32 || s.length > 32)
    throw corrupt(file, 'policy.approval')
  // A rollback-protected key's approval carries its epoch, bound to the record's counter.
  let epoch: PcrApproval['epoch']
  if (policy.epochIndex !== undefined) {
    const value = a?.epoch
    const name = epochIndexName(policy)
    if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value) || name === undefined)
      throw corrupt(file, 'policy.approval.epoch')
    epoch = { index: policy.epochIndex.handle, name, value: BigInt(value) }
  } else if (a?.epoch !== undefined) throw corrupt(file, 'policy.approval.epoch')
  const approval: PcrApproval = {
    pcrs: policy.pcrs,
    pcrDigest,
    approvedPolicy,
    authKey: policy.authKey,
    signature: { r, s },
    pcrValues: values,
    ...(epoch === undefined ? {} : { epoch, policyRef: EPOCH_POLICY_REF }),
  }
  if (!approvalIsValid(approval, policy.authKey)) throw corrupt(file, 'policy.approval.signature')
  policy.approval = approval
  return policy
}

const HEX = /^[0-9a-f]+$/

function corrupt(file: string, why: string): KeyStoreCorruptError {
  return new KeyStoreCorruptError('The TPM key record is not valid', {
    details: { file, why },
    hint: 'Restore the record from a backup, or recover from the paper words onto a new key.',
  })
}

/** Reads the record; `undefined` when the file does not exist. @throws {KeyStoreCorruptError} */
export async function readKeyRecord(file: string): Promise<Tpm2KeyRecord | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let v: Record<string, unknown>
  try {
    v = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw corrupt(file, 'json')
  }
  if (v?.kind !== TPM2_KEY_RECORD_KIND) throw corrupt(file, 'kind')
  if (v.version !== 1 && v.version !== 2 && v.version !== 3) throw corrupt(file, 'version')
  if (v.version >= 2 !== (v.policy !== undefined)) throw corrupt(file, 'version')
  if (typeof v.handle !== 'string' || !/^0x81[0-7][0-9a-f]{5}$/.test(v.handle))
    throw corrupt(file, 'handle')
  if (typeof v.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(v.keyId)) throw corrupt(file, 'keyId')
  const record: Tpm2KeyRecord = {
    version: v.version,
    kind: TPM2_KEY_RECORD_KIND,
    handle: v.handle,
    keyId: v.keyId,
  }
  if (v.publicArea !== undefined || v.name !== undefined) {
    if (typeof v.publicArea !== 'string' || !HEX.test(v.publicArea))
      throw corrupt(file, 'publicArea')
    let pub: RsaKeyPublic
    try {
      pub = parseRsaPublic(Buffer.from(v.publicArea, 'hex'))
    } catch {
      throw corrupt(file, 'publicArea')
    }
    if (v.name !== Buffer.from(pub.name).toString('hex')) throw corrupt(file, 'name')
    record.publicArea = v.publicArea
    record.name = v.name
  }
  if (v.policy !== undefined) record.policy = policyFromJson(file, v.policy)
  if (v.ekActivation !== undefined) record.ekActivation = ekActivationFromJson(file, v.ekActivation)
  if ((v.version === 3) !== (record.policy?.epochIndex !== undefined))
    throw corrupt(file, 'version')
  return record
}

function ekActivationFromJson(file: string, v: unknown): EkActivationRecord {
  const a = v as Record<string, unknown> | null
  if (a?.verified === false && (a.why === 'allowed' || a.why === 'emulator'))
    return { verified: false, why: a.why }
  if (
    a?.verified === true &&
    typeof a.certificateSha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(a.certificateSha256) &&
    typeof a.issuer === 'string' &&
    a.issuer.length <= 1024 &&
    typeof a.ekName === 'string' &&
    /^000b[0-9a-f]{64}$/.test(a.ekName)
  )
    return {
      verified: true,
      certificateSha256: a.certificateSha256,
      issuer: a.issuer,
      ekName: a.ekName,
    }
  throw corrupt(file, 'ekActivation')
}

/** Writes the record atomically, mode 0600. */
export async function writeKeyRecord(file: string, record: Tpm2KeyRecord): Promise<void> {
  await ensureDir(dirname(file))
  const { policy, ...rest } = record
  const json =
    policy === undefined
      ? { ...rest, version: 1 }
      : {
          ...rest,
          version: policy.epochIndex === undefined ? 2 : 3,
          policy: policyToJson(policy),
        }
  await writeFileAtomic(file, Buffer.from(`${JSON.stringify(json, null, 2)}\n`), { mode: 0o600 })
}
