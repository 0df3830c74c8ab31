/**
 * `pi-node key-policy show|authorize`: the PCR policy of the TPM wrapping key. `show` compares
 * the values the owner approved with the TPM's current PCRs; `authorize < words.txt` signs the
 * current values with the authorizing key derived from the paper words (after an OS or
 * firmware update, when the TPM refuses to unwrap), without re-wrapping any capsule key.
 */
import { join } from 'node:path'
import { UsageError } from '@digicap/cli-kit'
import {
  authorizePcrPolicy,
  derivePolicyAuthKey,
  readKeyRecord,
  readPcrValues,
  signPcrApproval,
  TPM2_KEY_RECORD_FILE,
  type Tpm2KeyRecord,
  TpmPolicyError,
} from '@digicap/keyguard'
import { loadConfig } from '../config.ts'
import { command, dataDirOf } from './shared.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** One PCR: the approved value, the current one, whether they match. */
export interface PcrLine {
  pcr: number
  approved: string | null
  current: string
  match: boolean
}

export interface KeyPolicyView {
  recordFile: string
  version: 1 | 2
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
}

async function readRecord(recordFile: string): Promise<Tpm2KeyRecord> {
  const record = await readKeyRecord(recordFile)
  if (record === undefined) {
    throw new UsageError('This node has no TPM key record', {
      details: { recordFile },
      hint: 'The tpm2 sealer writes it at init or at its first start (pi-node status).',
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
  const current = await readPcrValues(tcti, pcrs)
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
  return {
    ...base,
    pcrBound: true,
    pcrs: [...pcrs],
    authKey: `${hex(authKey.x)}${hex(authKey.y)}`,
    approved: approval !== undefined,
    lines,
    unmeasured: lines.every((l) => /^0+$/.test(l.current)),
  }
}

/**
 * Approves the TPM's current PCR values with the key derived from `words`.
 * @throws {TpmPolicyError} `not-pcr-bound`, or `wrong-words` when the words are not this node's owner's.
 */
export async function keyPolicyAuthorize(
  tcti: string,
  recordFile: string,
  words: string,
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
        hint: 'Use the paper words written down at pi-node init.',
      })
    }
    const values = await readPcrValues(tcti, record.policy.pcrs)
    await authorizePcrPolicy(recordFile, signPcrApproval(key, record.policy.pcrs, values))
  } finally {
    key.privateKey.fill(0)
  }
  return keyPolicyView(tcti, recordFile)
}

async function readStdin(stdin: AsyncIterable<Buffer | string> | undefined): Promise<string> {
  const parts: Buffer[] = []
  for await (const c of stdin ?? []) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(parts).toString('utf8').trim()
}

function render(v: KeyPolicyView): string {
  const head = `TPM key ${v.handle} (key id ${v.keyId.slice(0, 16)}…), record ${v.recordFile} version ${v.version}\n`
  if (!v.pcrBound) {
    return `${head}  not PCR-bound: the key unwraps whatever OS booted (a key created before the PCR policy)\n`
  }
  const rows = (v.lines ?? []).map(
    (l) =>
      `  PCR ${String(l.pcr).padStart(2)}  ${l.match ? 'ok     ' : l.approved === null ? 'NOT APPROVED' : 'DIFFERS'}  current ${l.current.slice(0, 16)}…${l.approved !== null && !l.match ? `  approved ${l.approved.slice(0, 16)}…` : ''}`,
  )
  const verdict = !v.approved
    ? 'no PCR set approved yet: run pi-node key-policy authorize < words.txt'
    : v.lines?.every((l) => l.match)
      ? 'the TPM will unwrap: the current PCRs are the approved ones'
      : 'the TPM will REFUSE to unwrap: after an OS update, authorize the new values; otherwise this Pi booted something else'
  const warning = v.unmeasured
    ? '  WARNING: every selected PCR is at its reset value: nothing measured this boot (stock Pi firmware), so the binding holds for any OS booted on this Pi (see the README, Raspberry Pi guide)\n'
    : ''
  return `${head}  PCR-bound: PCRs ${v.pcrs?.join(',')}; authorizing key ${v.authKey?.slice(0, 16)}…\n${rows.join('\n')}\n  ${verdict}\n${warning}`
}

export const keyPolicy = command({
  name: 'key-policy',
  summary: 'show or authorize the PCR policy of the TPM wrapping key',
  usage: 'show | authorize [options] < words.txt',
  description: `show: the PCRs the wrapping key is bound to, the values the owner approved and the TPM's
current values, and whether the TPM will unwrap.
authorize: reads the 24 words from stdin (never from the command line), derives the owner's
authorizing key and approves the TPM's CURRENT PCR values (run it after an OS or firmware
update, once the new system booted). No capsule key is re-wrapped.`,
  args: [{ name: 'action', help: 'show | authorize' }],
  async run(ctx) {
    const action = ctx.args.action
    if (action !== 'show' && action !== 'authorize') {
      throw new UsageError('key-policy takes show or authorize', { details: { action } })
    }
    const dataDir = dataDirOf(ctx)
    const config = await loadConfig(dataDir, ctx.env)
    if (config.sealer.kind !== 'tpm2') {
      throw new UsageError('key-policy needs the tpm2 sealer', {
        details: { sealer: config.sealer.kind },
      })
    }
    const recordFile = join(dataDir, TPM2_KEY_RECORD_FILE)
    if (action === 'show') {
      const view = await keyPolicyView(config.sealer.tcti, recordFile)
      ctx.result({ keyPolicy: view }, render(view))
      return
    }
    const words = await readStdin(ctx.io.stdin)
    if (!words) {
      throw new UsageError('key-policy authorize reads the words from stdin; got nothing', {
        hint: 'pi-node key-policy authorize < words.txt',
      })
    }
    const view = await keyPolicyAuthorize(config.sealer.tcti, recordFile, words)
    ctx.result({ keyPolicy: view }, `Approved the current PCR values.\n${render(view)}`)
  },
})
