/**
 * The PCR policy of a node's TPM wrapping key, as its owner sees it: the PCRs the key is bound
 * to, the values the owner approved against the TPM's current ones (will the TPM unwrap?), and
 * approving the current values with the authorizing key derived from the paper words (after an
 * OS or firmware update), without re-wrapping any capsule key. `pi-node key-policy` prints it.
 */
import { toHex } from '@digicap/capsule-core'
import { TpmPolicyError } from '@digicap/tpm'
import { advanceEpoch, type EpochState, readEpochState } from './epoch.ts'
import { authorizePcrPolicy, readPcrValues } from './pcr-authorize.ts'
import { derivePolicyAuthKey, REPROVISION_HINT, signPcrApproval } from './pcr-policy.ts'
import { readKeyRecord, type Tpm2KeyRecord } from './tpm2-key-record.ts'

/** Hex without `0x`, as the view prints it. */
const hex = (b: Uint8Array) => toHex(b).slice(2)

/** One PCR: the approved value, the current one, whether they match. */
export interface PcrLine {
  pcr: number
  approved: string | null
  current: string
  match: boolean
}

export interface KeyPolicyView {
  recordFile: string
  version: 1 | 2 | 3
  handle: string
  keyId: string
  pcrBound: boolean
  pcrs?: number[]
  /** The authorizing key's public point, hex x‖y. */
  authKey?: string
  approved?: boolean
  lines?: PcrLine[]
  /**
   * Every selected PCR is at its reset value (all zeros): nothing measured the boot (stock
   * Raspberry Pi firmware), so the policy binds nothing an attacker with the Pi cannot boot.
   */
  unmeasured?: boolean
  /**
   * ADR 0094. `protected`: only the newest approval unwraps (the key's approvals name an NV
   * epoch counter); `epoch`: the counter's state and value and the approval's epoch.
   * Unprotected (a key made before): every approval ever signed stays valid; `hint` says how
   * to re-provision.
   */
  rollback?: {
    protected: boolean
    epoch?: EpochState & { approved?: string }
    hint?: string
  }
}

async function readRecord(recordFile: string): Promise<Tpm2KeyRecord> {
  const record = await readKeyRecord(recordFile)
  if (record === undefined) {
    throw new TpmPolicyError('This node has no TPM key record', {
      details: { reason: 'no-record', recordFile },
      hint: 'The tpm2 sealer writes it when it creates or first loads its key (pi-node init or status).',
    })
  }
  return record
}

/** What `show` prints: the record, and per PCR the approved and the current value. */
export async function keyPolicyView(tcti: string, recordFile: string): Promise<KeyPolicyView> {
  const record = await readRecord(recordFile)
  const base = {
    recordFile,
    version: record.version,
    handle: record.handle,
    keyId: record.keyId,
  }
  if (record.policy === undefined) return { ...base, pcrBound: false }
  const { pcrs, authKey, approval } = record.policy
  // Checked answers: a bus attacker must not show the owner "match" for his own boot.
  const current = await readPcrValues(tcti, pcrs, undefined, record)
  const lines = [...pcrs]
    .sort((a, b) => a - b)
    .map((pcr) => {
      const approved = approval?.pcrValues.get(pcr)
      const now = current.get(pcr) as Uint8Array
      return {
        pcr,
        approved: approved === undefined ? null : hex(approved),
        current: hex(now),
        match: approved !== undefined && hex(approved) === hex(now),
      }
    })
  const epoch = await readEpochState(tcti, record)
  return {
    ...base,
    pcrBound: true,
    pcrs: [...pcrs],
    authKey: `${hex(authKey.x)}${hex(authKey.y)}`,
    approved: approval !== undefined,
    lines,
    unmeasured: lines.every((l) => /^0+$/.test(l.current)),
    rollback:
      epoch === undefined
        ? { protected: false, hint: REPROVISION_HINT }
        : {
            protected: true,
            epoch: {
              ...epoch,
              ...(approval?.epoch === undefined ? {} : { approved: String(approval.epoch.value) }),
            },
          },
  }
}

/**
 * Approves the TPM's current PCR values with the key derived from `words`; `expected` gives
 * the value to approve for a PCR that is measured later (the release PCR before `serve`
 * starts: `expectedReleasePcr`) instead of its current one.
 * @throws {TpmPolicyError} `not-pcr-bound`, or `wrong-words` when the words are not this node's owner's.
 */
export async function keyPolicyAuthorize(
  tcti: string,
  recordFile: string,
  words: string,
  options: { expected?: ReadonlyMap<number, Uint8Array> } = {},
): Promise<KeyPolicyView> {
  const record = await readRecord(recordFile)
  if (record.policy === undefined) {
    throw new TpmPolicyError('The TPM key is not PCR-bound: there is nothing to authorize', {
      details: { reason: 'not-pcr-bound', recordFile },
    })
  }
  const key = await derivePolicyAuthKey(words)
  try {
    if (
      hex(key.publicKey.x) !== hex(record.policy.authKey.x) ||
      hex(key.publicKey.y) !== hex(record.policy.authKey.y)
    ) {
      throw new TpmPolicyError('These words are not the words of this node’s owner', {
        details: { reason: 'wrong-words', recordFile },
        hint: 'Use the paper words written down when the node was set up.',
      })
    }
    // What the owner signs comes in answers the pinned key's session authenticates.
    const values = await readPcrValues(tcti, record.policy.pcrs, undefined, record)
    for (const [pcr, value] of options.expected ?? []) if (values.has(pcr)) values.set(pcr, value)
    if (record.policy.epochIndex === undefined) {
      await authorizePcrPolicy(recordFile, signPcrApproval(key, record.policy.pcrs, values))
    } else {
      // The counter moves first: from here every older approval is refused by the TPM. A
      // crash before the record is written leaves none valid; running this again mends it.
      const epoch = await advanceEpoch(tcti, record, key)
      const approval = signPcrApproval(key, record.policy.pcrs, values, {
        index: epoch.index,
        name: epoch.name,
        value: epoch.value,
      })
      await authorizePcrPolicy(recordFile, approval, {
        handle: epoch.index,
        writeRef: epoch.writeRef,
      })
    }
  } finally {
    key.privateKey.fill(0)
  }
  return keyPolicyView(tcti, recordFile)
}

/** What `pi-node key-policy` prints for a view: per PCR approved vs current, the verdict, a warning. */
export function renderKeyPolicy(v: KeyPolicyView): string {
  const head = `TPM key ${v.handle} (key id ${v.keyId.slice(0, 16)}…), record ${v.recordFile} version ${v.version}\n`
  if (!v.pcrBound) {
    return `${head}  not PCR-bound: the key unwraps whatever OS booted (a key created before the PCR policy)\n`
  }
  const rows = (v.lines ?? []).map(
    (l) =>
      `  PCR ${String(l.pcr).padStart(2)}  ${l.match ? 'ok     ' : l.approved === null ? 'NOT APPROVED' : 'DIFFERS'}  current ${l.current.slice(0, 16)}…${l.approved !== null && !l.match ? `  approved ${l.approved.slice(0, 16)}…` : ''}`,
  )
  const e = v.rollback?.epoch
  const epochOk = v.rollback?.protected !== true || (e?.state === 'ok' && e.approved === e.value)
  const verdict = !v.approved
    ? 'no PCR set approved yet: run pi-node key-policy authorize < words.txt'
    : !v.lines?.every((l) => l.match)
      ? 'the TPM will REFUSE to unwrap: after an OS update, authorize the new values; otherwise this Pi booted something else'
      : epochOk
        ? 'the TPM will unwrap: the current PCRs are the approved ones'
        : 'the TPM will REFUSE to unwrap: the approval is not bound to the epoch counter’s value (below); if this boot is yours, run pi-node key-policy authorize < words.txt'
  const rollback =
    v.rollback === undefined
      ? ''
      : !v.rollback.protected
        ? `  NO ROLLBACK PROTECTION: every PCR approval ever signed stays valid (a key made before ADR 0094). ${v.rollback.hint ?? ''}\n`
        : `  rollback protection: epoch counter ${e?.index} ${e?.state === 'ok' ? `at ${e.value}, approval epoch ${e.approved ?? 'none'}${e.approved !== undefined && e.approved !== e.value ? ' (SUPERSEDED: authorize again)' : ''}` : `${e?.state?.toUpperCase()}: the TPM refuses every unwrap until pi-node key-policy authorize (re)defines it`}\n`
  const warning = v.unmeasured
    ? '  WARNING: every selected PCR is at its reset value: nothing measured this boot (stock Pi firmware), so the binding holds for any OS booted on this Pi (see the README, Raspberry Pi guide)\n'
    : ''
  return `${head}  PCR-bound: PCRs ${v.pcrs?.join(',')}; authorizing key ${v.authKey?.slice(0, 16)}…\n${rows.join('\n')}\n  ${verdict}\n${rollback}${warning}`
}
