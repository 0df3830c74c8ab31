/** `executor-node reset-run-pcr`: the one way PCR 23 is reset outside a run's clean-up. */
import { ConfigError } from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

export const resetRunPcrCommand = command({
  name: 'reset-run-pcr',
  summary: 'reset PCR 23 after a crashed run (prints the value it cleared)',
  usage: '',
  description: `Resets PCR 23 of the node's TPM and prints the value it held. The node never resets PCR 23
when it starts: after a crash during a run PCR 23 still holds that run's measurement, which is
the evidence that the run was not cleaned up — quotes show it and new runs are refused until
it is reset. Keep the printed value with your incident notes, then reset. The reset is a
\`reset\` event in the event log the next quotes carry. Run it while \`serve\` is stopped (or use
\`serve --reset-run-pcr\`): a reset in the middle of a run voids that run's evidence.`,
  flags: {},
  async run(ctx) {
    const [{ loadConfig, executorNodePaths }, { loadNodeAttestation, runPcrAtStart }] =
      await Promise.all([import('../config.ts'), import('@digicap/executor/node')])
    const dataDir = dataDirOf(ctx)
    const { tcti } = await loadConfig(dataDir, ctx.env)
    if (tcti === undefined) {
      throw new ConfigError('This node has no TPM in its config', {
        details: { dataDir },
        hint: 'Set one with init --tcti or the env DIGICAP_TCTI.',
      })
    }
    const attestation = await loadNodeAttestation({
      tcti,
      recordFile: executorNodePaths(dataDir).attestationRecord,
    })
    const line = await runPcrAtStart(attestation, { reset: true })
    ctx.result(line.doc, line.text)
  },
})
