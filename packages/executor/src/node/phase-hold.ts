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
 * this run has to see (a missed phase fails an honest run). Grant ids are public, though: with
 * `committees` (the hub's seats, ADR 0070) only the seated members' quotes count, and a stranger
 * quoting the run's own grant id ends nothing either.
 *
 * Why a quote that completes after a measure (or reset) completed was taken after it: the
 * agent runs its TPM commands one at a time, in call order.
 */
import type { AttestationAgent } from '@digicap/attestation/agent'
import { equalBytes } from '@digicap/capsule-core'
import type { JobCommittees } from './job-committees.ts'

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
  /**
   * The seated committees of the node's jobs: a quote counts only when its peer sits on the
   * committee of the held run's grant (job id = grant id). Without it any peer's quote of that
   * grant counts.
   */
  readonly committees?: Pick<JobCommittees, 'seatedPeers' | 'watch'> | undefined
}

export function holdPhasesForQuotes(
  agent: AttestationAgent,
  holdMs: number,
  options: PhaseHoldOptions = {},
): PhaseHoldAgents {
  const challengers = Math.max(1, options.challengers ?? 1)
  const graceMs = options.graceMs ?? holdMs
  const { committees } = options
  /** The holds in progress, by the grant each waits for: each counts the peers that quoted it. */
  const waiting = new Map<(peer: string) => void, Uint8Array>()
  let anonymous = 0
  /** Resolves once `challengers` distinct peers quoted `grantId` (or after `holdMs` / grace). */
  const nextQuotes = (grantId: Uint8Array) =>
    new Promise<void>((resolve) => {
      committees?.watch(grantId)
      const seen = new Set<string>()
      let grace: ReturnType<typeof setTimeout> | undefined
      const done = () => {
        clearTimeout(timer)
        clearTimeout(grace)
        waiting.delete(count)
        resolve()
      }
      const count = (peer: string) => {
        seen.add(peer)
        if (seen.size >= challengers) return done()
        grace ??= setTimeout(done, graceMs)
      }
      const timer = setTimeout(done, holdMs)
      waiting.set(count, grantId)
    })
  const served: AttestationAgent = {
    ...agent,
    quote: async (binding, from) => {
      const quote = await agent.quote(binding, from)
      // A quote asked without a peer (in process) counts as its own challenger.
      const peer = from?.peer ?? `anonymous-${anonymous++}`
      const holds = [...waiting].filter(([, grantId]) => equalBytes(grantId, binding.grantId))
      if (holds.length === 0) return quote
      // Only a held grant's committee is read: a stranger's grant ids cost no chain read.
      if (committees !== undefined) {
        const seated = await committees.seatedPeers(binding.grantId).catch(() => undefined)
        if (!seated?.has(peer)) return quote
      }
      for (const [count] of holds) count(peer)
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
