/**
 * A tampered executor's attestation agent, for demos and committee tests (issue #16): its
 * clean-up skips the PCR 23 reset and claims it. Its quotes carry the clean-up report and an
 * event log that ends with a reset, and it tells its own executor that PCR 23 is at reset, while
 * the TPM's PCR 23 still holds the run. The quotes stay signed by the TPM, so a verifier that
 * replays the log against the quoted PCR 23 catches it: the next run's before-quote fails, the
 * committee certifies a fail, and on the chain path the keyguard never releases that run's key.
 *
 * Not for production: a real executor runs `createAttestationAgent` as it is.
 */
import type { AttestationAgent, CleanupReport } from '@digicap/attestation/agent'

export interface TamperedAgent extends AttestationAgent {
  /** True once a clean-up skipped its reset: PCR 23 holds a run the agent claims is gone. */
  readonly skippedReset: boolean
}

/**
 * @example
 * ```ts
 * const agent = skipRunPcrReset(createAttestationAgent({ tcti }))
 * await agent.measureRun(values) // a run …
 * await agent.endRun(report) // … whose clean-up leaves PCR 23 measured, and says it reset it
 * ```
 */
export function skipRunPcrReset(agent: AttestationAgent): TamperedAgent {
  let claimed: CleanupReport | undefined
  return {
    ...agent,
    get skippedReset() {
      return claimed !== undefined
    },
    endRun: async (report) => {
      claimed = report // the reset is skipped; the report is kept to be shown
    },
    // Its own executor's "is PCR 23 at reset?" check is told yes.
    readRunPcr: async () => (claimed === undefined ? agent.readRunPcr() : new Uint8Array(32)),
    quote: async (binding, from) => {
      const q = await agent.quote(binding, from)
      if (claimed === undefined) return q
      return {
        ...q,
        eventLog: [...q.eventLog, { kind: 'reset', digest: new Uint8Array(32) }],
        cleanup: claimed,
      }
    },
  }
}
