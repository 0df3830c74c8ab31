/**
 * Approving a PCR set for a PCR-bound key (what `pi-node key-policy authorize` does) and reading
 * the TPM's current PCR values to approve or to compare.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import {
  parseRsaPublic,
  pcrRead,
  pcrReadInSession,
  type SaltKey,
  TpmPolicyError,
  transportFor,
  withChannel,
} from '@digicap/tpm'
import { approvalIsValid, type PcrApproval } from './pcr-policy.ts'
import {
  epochIndexName,
  readKeyRecord,
  type Tpm2KeyPolicy,
  type Tpm2KeyRecord,
  writeKeyRecord,
} from './tpm2-key-record.ts'

/**
 * Stores `approval` in the key record, after checking it in software against the record's
 * authorizing key. The running sealer uses it from its next unwrap. For a rollback-protected
 * key (ADR 0094) the approval must carry an epoch on the record's counter; `epochIndex` (the
 * counter an approval just defined anew) replaces the record's along with it.
 *
 * @throws {TpmPolicyError} `not-pcr-bound` (no policy in the record) or `approval-invalid`.
 */
export async function authorizePcrPolicy(
  keyRecordFile: string,
  approval: PcrApproval,
  epochIndex?: { handle: number; writeRef: Uint8Array },
): Promise<Tpm2KeyRecord> {
  const record = await readKeyRecord(keyRecordFile)
  if (record?.policy === undefined) {
    throw new TpmPolicyError('The TPM key is not PCR-bound', {
      details: { reason: 'not-pcr-bound', keyRecordFile },
      hint: 'Only a key created with a PCR policy takes approvals.',
    })
  }
  const samePcrs =
    approval.pcrs.length === record.policy.pcrs.length &&
    approval.pcrs.every((p, i) => p === [...record.policy!.pcrs].sort((a, b) => a - b)[i])
  const policy: Tpm2KeyPolicy = {
    ...record.policy,
    ...(epochIndex !== undefined && record.policy.epochIndex !== undefined ? { epochIndex } : {}),
  }
  // An epoch key takes only approvals on its counter; an older key, only approvals without.
  const counter = policy.epochIndex === undefined ? undefined : epochIndexName(policy)
  const fitsKey =
    counter === undefined
      ? policy.epochIndex === undefined && approval.epoch === undefined
      : approval.epoch !== undefined &&
        approval.epoch.index === policy.epochIndex?.handle &&
        Buffer.from(approval.epoch.name).equals(Buffer.from(counter))
  if (!samePcrs || !fitsKey || !approvalIsValid(approval, record.policy.authKey)) {
    throw new TpmPolicyError('The approval is not signed by this key’s authorizing key', {
      details: { reason: 'approval-invalid', keyRecordFile },
      hint: 'Sign it with the paper words of this node’s owner.',
    })
  }
  const next: Tpm2KeyRecord = { ...record, policy: { ...policy, approval } }
  await writeKeyRecord(keyRecordFile, next)
  return next
}

/**
 * Reads the current SHA-256 values of `pcrs` from the TPM at `tcti` (`swtpm:` or `device:`).
 * With `pinned` (a key record with its public area), the reads run in an audit session salted
 * to the pinned wrapping key and every answer's HMAC is checked (ADR 0089): use it for values
 * an owner signs or compares. Without, the answer is whatever the bus carried.
 *
 * @throws {InvalidArgumentError} for another TCTI; {TpmSessionError} `response-hmac` for an
 *   altered answer, `salt-refused` for another key at the handle; the TPM errors of the transport.
 */
export async function readPcrValues(
  tcti: string,
  pcrs: readonly number[],
  timeoutMs = 10_000,
  pinned?: Pick<Tpm2KeyRecord, 'handle' | 'publicArea'>,
): Promise<Map<number, Uint8Array>> {
  const transport = transportFor(tcti, timeoutMs)
  if (transport === undefined) {
    throw new InvalidArgumentError('Reading PCRs needs a swtpm: or device: TCTI', {
      details: { tcti },
    })
  }
  if (pinned === undefined) return withChannel(transport, (send) => pcrRead(send, pcrs))
  const saltKey = pinnedSaltKey(pinned)
  return withChannel(transport, (send) => pcrReadInSession(send, saltKey, pcrs))
}

/**
 * The pinned wrapping key as a session's salt key: what authenticates the TPM's answers.
 * @throws {TpmPolicyError} `no-pinned-key` for a record without its public area.
 */
export function pinnedSaltKey(pinned: Pick<Tpm2KeyRecord, 'handle' | 'publicArea'>): SaltKey {
  if (pinned.publicArea === undefined) {
    throw new TpmPolicyError('The key record pins no public area to check the TPM’s answers with', {
      details: { reason: 'no-pinned-key', handle: pinned.handle },
      hint: 'Start the node once over a swtpm: or device: TCTI (it pins the key), or recover onto a new key.',
    })
  }
  return {
    handle: Number.parseInt(pinned.handle, 16),
    public: parseRsaPublic(Buffer.from(pinned.publicArea, 'hex')),
  }
}
