/**
 * Opt-in for a verifier that watches a run (the demo's, a committee member's): each measured
 * phase of the run is held until the node answered one attest quote taken in it, at most
 * `holdMs` per phase — before PCR 23 is extended (before), once it is (during), and once the
 * clean-up reset it (after). Driven by the quotes answered, not by sleeps: with a verifier
 * watching, a phase lasts one quote; with none, `holdMs`.
 *
 * Why a quote that completes after a measure (or reset) completed was taken after it: the
 * agent runs its TPM commands one at a time, in call order.
 */
import type { AttestationAgent } from '@digicap/attestation/agent'

export interface PhaseHoldAgents {
  /** For the executor's measured runs: measureRun and endRun hold their phases. */
  readonly run: AttestationAgent
  /** For `/digicap/attest/1.0.0`: every quote answered ends a phase's hold. */
  readonly served: AttestationAgent
}

export function holdPhasesForQuotes(agent: AttestationAgent, holdMs: number): PhaseHoldAgents {
  const waiting = new Set<() => void>()
  /** Resolves at the next quote answered (or after `holdMs`). */
  const nextQuote = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        waiting.delete(done)
        resolve()
      }
      const timer = setTimeout(done, holdMs)
      waiting.add(done)
    })
  const served: AttestationAgent = {
    ...agent,
    quote: async (binding) => {
      const quote = await agent.quote(binding)
      for (const done of [...waiting]) done()
      return quote
    },
  }
  const run: AttestationAgent = {
    ...agent,
    measureRun: async (values) => {
      await nextQuote() // before: PCR 23 still at reset
      await agent.measureRun(values)
      await nextQuote() // during: PCR 23 holds this run
    },
    endRun: async (report) => {
      await agent.endRun(report)
      await nextQuote() // after: reset, with this run's clean-up report
    },
  }
  return { run, served }
}
