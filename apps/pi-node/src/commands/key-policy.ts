/**
 * `pi-node key-policy show|authorize`: the PCR policy of the TPM wrapping key. `show` compares
 * the values the owner approved with the TPM's current PCRs; `authorize < words.txt` signs the
 * current values with the authorizing key derived from the paper words (after an OS or
 * firmware update, when the TPM refuses to unwrap), without re-wrapping any capsule key.
 */
import { join } from 'node:path'
import { UsageError } from '@digicap/cli-kit'
// Types only at the top: `--help` must not load the keyguard (and ethers); run() imports it.
import type { KeyPolicyView } from '@digicap/keyguard'
import { loadConfig } from '../config.ts'
import { command, dataDirOf } from './shared.ts'

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
    const { keyPolicyAuthorize, keyPolicyView, TPM2_KEY_RECORD_FILE } = await import(
      '@digicap/keyguard'
    )
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
    // The release PCR is approved at the value the pinned manifest gives it once measured.
    const { releasePcrExpectation } = await import('@digicap/owner/node')
    const expected = await releasePcrExpectation(undefined, config.release)
    const view = await keyPolicyAuthorize(config.sealer.tcti, recordFile, words, { expected })
    ctx.result({ keyPolicy: view }, `Approved the current PCR values.\n${render(view)}`)
  },
})
