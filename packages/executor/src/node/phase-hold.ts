/**
 * Opt-in for a verifier that watches a run (the demo's, a committee's): each measured phase of
 * the run is held until the node answered attest quotes taken in it — before PCR 23 is
 * extended (before), once it is (during), and once the clean-up reset it (after). Driven by
 * the quotes answered, not by sleeps: with one verifier watching (`challengers` 1, the
 * default), a phase lasts one quote; with a committee of n (`challengers` n), until n distinct
 * challengers quoted, or `graceMs` after the phase's first quote (a silent member does not
 * hold the run for long); with none, `holdMs`.
 *
 * Only a quote for the held run's grant id counts: anyone may challenge the node, and a
 * stranger's quotes (for a grant of its own making) must not end the phases the committee of
 * this run has to see (a missed phase fails an honest run).
 *
 * Why a quote that completes after a measure (or reset) completed was taken after it: the
 * agent runs its TPM commands one at a time, in call order.
 */
import type { AttestationAgent } from '@digicap/attestation/agent'
import { equalBytes } from '@digicap/capsule-core'

export interface PhaseHoldAgents {
  /** For the executor's measured runs: measureRun and endRun hold their phases. */
  readonly run: AttestationAgent
  /** For `/digicap/attest/1.0.0`: a quote for the held run's grant counts toward its hold. */
  readonly served: AttestationAgent
}

export interface PhaseHoldOptions {
  /** Distinct challengers (libp2p peers) a phase waits for. Default 1. */
  readonly challengers?: number
  /** Once a phase had its first quote, the longest it waits for the other challengers, ms. Default `holdMs`. */
  readonly graceMs?: number
}

export function holdPhasesForQuotes(
  agent: AttestationAgent,
  holdMs: number,
  options: PhaseHoldOptions = {},
): PhaseHoldAgents {
  const challengers = Math.max(1, options.challengers ?? 1)
  const graceMs = options.graceMs ?? holdMs
  /** The holds in progress: each counts the peers that quoted its run's grant in its phase. */
  const waiting = new Set<(peer: string, grantId: Uint8Array) => void>()
  let anonymous = 0
  /** Resolves once `challengers` distinct peers quoted `grantId` (or after `holdMs` / grace). */
  const nextQuotes = (grantId: Uint8Array) =>
    new Promise<void>((resolve) => {
      const seen = new Set<string>()
      let grace: ReturnType<typeof setTimeout> | undefined
      const done = () => {
        clearTimeout(timer)
        clearTimeout(grace)
        waiting.delete(count)
        resolve()
      }
      const count = (peer: string, quoted: Uint8Array) => {
        if (!equalBytes(quoted, grantId)) return
        seen.add(peer)
        if (seen.size >= challengers) return done()
        grace ??= setTimeout(done, graceMs)
      }
      const timer = setTimeout(done, holdMs)
      waiting.add(count)
    })
  const served: AttestationAgent = {
    ...agent,
    quote: async (binding, from) => {
      const quote = await agent.quote(binding, from)
      // A quote asked without a peer (in process) counts as its own challenger.
      const peer = from?.peer ?? `anonymous-${anonymous++}`
      for (const count of [...waiting]) count(peer, binding.grantId)
      return quote
    },
  }
  const run: AttestationAgent = {
    ...agent,
    measureRun: async (values) => {
      await nextQuotes(values.grantId) // before: PCR 23 still at reset
      await agent.measureRun(values)
      await nextQuotes(values.grantId) // during: PCR 23 holds this run
    },
    endRun: async (report) => {
      await agent.endRun(report)
      await nextQuotes(report.grantId) // after: reset, with this run's clean-up report
    },
  }
  return { run, served }
}
