/**
 * PCR 23 when the node starts. A node never resets it on its own: after a crash PCR 23 still
 * holds the crashed run's measurement, which is the evidence that the run was not cleaned up
 * (its before/after quotes fail, and new runs are refused while it is not at reset). The
 * operator resets it explicitly (`executor-node reset-run-pcr`, or `serve --reset-run-pcr`),
 * which the agent logs as a `reset` event (attestation SPEC §6) and which reports the value it
 * cleared.
 */
import { toHex } from '@digicap/capsule-core'
import { isResetValue } from '../run/attestation.ts'
import type { DaemonLine } from './daemon.ts'
import type { NodeAttestation } from './types.ts'

export interface RunPcrState {
  /** PCR 23 (sha256) now. */
  readonly value: Uint8Array
  /** True when it holds its reset value (no run measured, or the last one cleaned up). */
  readonly atReset: boolean
}

/** PCR 23 now, and whether it is at its reset value. */
export async function readRunPcrState(attestation: NodeAttestation): Promise<RunPcrState> {
  const value = await attestation.agent.readRunPcr()
  return { value, atReset: isResetValue(value) }
}

/**
 * Resets PCR 23 (the agent's event log starts again with a `reset` event) and returns what it
 * held before. Do not call it while a run is measured: that run's during-quote would fail.
 */
export async function resetRunPcr(
  attestation: NodeAttestation,
): Promise<{ readonly previous: RunPcrState }> {
  const previous = await readRunPcrState(attestation)
  await attestation.agent.resetRunPcr()
  return { previous }
}

/**
 * What a starting daemon does with PCR 23, as a line to print: with `reset`, resets it
 * (`run-pcr-reset`, with the value it held); without, leaves it and says whether it is ready
 * (`run-pcr-ready`) or holds a run that was not cleaned up (`run-pcr-not-reset`: runs are refused
 * until it is reset).
 */
export async function runPcrAtStart(
  attestation: NodeAttestation,
  options: { readonly reset?: boolean } = {},
): Promise<DaemonLine> {
  if (options.reset) {
    const { previous } = await resetRunPcr(attestation)
    const held = toHex(previous.value)
    return {
      doc: { event: 'run-pcr-reset', previous: held, wasAtReset: previous.atReset },
      text: previous.atReset
        ? 'PCR 23 reset (it was at its reset value)\n'
        : `PCR 23 reset; it held ${held} (a run that was not cleaned up)\n`,
    }
  }
  const state = await readRunPcrState(attestation)
  if (state.atReset) return { doc: { event: 'run-pcr-ready' }, text: 'PCR 23 at its reset value\n' }
  const held = toHex(state.value)
  return {
    doc: { event: 'run-pcr-not-reset', value: held },
    text: `PCR 23 holds ${held}: a run was not cleaned up (a crash?). Runs are refused until \`executor-node reset-run-pcr\` (or serve --reset-run-pcr).\n`,
  }
}
