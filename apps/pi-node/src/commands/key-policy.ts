/**
 * `pi-node key-policy show|authorize`: the PCR policy of the TPM wrapping key. `show` compares
 * the values the owner approved with the TPM's current PCRs; `authorize < words.txt` signs the
 * current values with the authorizing key derived from the paper words (after an OS or
 * firmware update, when the TPM refuses to unwrap), without re-wrapping any capsule key.
 */
import { join } from 'node:path'
import { readStdinText, UsageError } from '@digicap/cli-kit'
import { loadConfig } from '../config.ts'
import { command, dataDirOf } from './shared.ts'

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
    // Loaded here: `--help` must not load the keyguard (and ethers).
    const { keyPolicyAuthorize, keyPolicyView, renderKeyPolicy, TPM2_KEY_RECORD_FILE } =
      await import('@digicap/keyguard')
    const recordFile = join(dataDir, TPM2_KEY_RECORD_FILE)
    if (action === 'show') {
      const view = await keyPolicyView(config.sealer.tcti, recordFile)
      ctx.result({ keyPolicy: view }, renderKeyPolicy(view))
      return
    }
    const words = await readStdinText(ctx.io.stdin)
    if (!words) {
      throw new UsageError('key-policy authorize reads the words from stdin; got nothing', {
        hint: 'pi-node key-policy authorize < words.txt',
      })
    }
    // The release PCR is approved at the value the pinned manifest gives it once measured.
    const { releasePcrExpectation } = await import('@digicap/owner/node')
    const expected = await releasePcrExpectation(undefined, config.release)
    const view = await keyPolicyAuthorize(config.sealer.tcti, recordFile, words, { expected })
    ctx.result({ keyPolicy: view }, `Approved the current PCR values.\n${renderKeyPolicy(view)}`)
  },
})
