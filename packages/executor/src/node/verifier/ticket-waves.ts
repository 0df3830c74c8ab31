/**
 * When this verifier sends its VRF ticket (ADR 0065): in a wave set by the ticket's score against
 * the median cut-off of recent closed committees, and not at all once the seats are full of
 * better tickets. Seats only get better during a window, so a ticket left unsent this way could
 * not have been seated: the committee is the one every ticket would have made, for a few tickets'
 * gas instead of every verifier's.
 */

import type { Address } from '@digicap/capsule-core'
import {
  canBeSeated,
  cutoffReference,
  sortitionScore,
  ticketWave,
  ticketWaves,
} from '@digicap/committee'
import type { VerifierChain } from './types.ts'

/** Closed committees' cut-offs a node keeps (the reference is their median). */
const REMEMBERED = 16
/** Jobs a node waits to see close; older ones are dropped unread. */
const PENDING = 64

/** The cut-offs of jobs this node saw, read once their windows closed. */
export interface CutoffHistory {
  /** Notes a job whose cut-off to read once its window has closed. */
  watch(jobId: Uint8Array): void
  /** The reference cut-off (median of the last closed full committees), reading what closed. */
  reference(): Promise<bigint | undefined>
  /** Cut-offs known (for reports). */
  readonly size: number
}

export function cutoffHistory(chain: Pick<VerifierChain, 'cutoff'>): CutoffHistory {
  const pending = new Map<string, Uint8Array>()
  const cutoffs: bigint[] = []
  return {
    watch(jobId) {
      const id = Buffer.from(jobId).toString('hex')
      if (pending.has(id)) return
      pending.set(id, jobId)
      if (pending.size > PENDING) pending.delete(pending.keys().next().value!)
    },
    async reference() {
      for (const [id, jobId] of [...pending]) {
        const c = await chain.cutoff(jobId).catch(() => undefined)
        if (c === undefined || !c.closed) continue
        pending.delete(id)
        if (!c.full) continue
        cutoffs.push(c.score)
        if (cutoffs.length > REMEMBERED) cutoffs.shift()
      }
      return cutoffReference(cutoffs)
    },
    get size() {
      return cutoffs.length
    },
  }
}

/** What {@link waitForWave} decided. */
export type TicketPlan =
  | { readonly send: true; readonly wave: number }
  | { readonly send: false; readonly wave: number; readonly cutoff: bigint; readonly score: bigint }

/**
 * Waits for this ticket's wave, then says whether to send it: not once every seat is taken by a
 * score at or below its own. A node with no weight (not eligible) sends at once, so the chain
 * says why it is refused; a read that fails (weight, cut-off) sends too, as before waves: it
 * costs gas, never a seat. Only the wait itself throws (`stopped`, or the head unreadable).
 */
export async function waitForWave(p: {
  readonly chain: Pick<VerifierChain, 'weight' | 'cutoff'>
  readonly self: Address
  readonly jobId: Uint8Array
  readonly beta: Uint8Array
  readonly grantBlock: number
  readonly lastBlock: number
  readonly history: CutoffHistory
  /** Resolves once the head is past `block`. */
  readonly untilBlock: (block: number) => Promise<void>
}): Promise<TicketPlan> {
  const weight = await p.chain.weight(p.self).catch(() => undefined)
  if (weight === undefined || weight <= 0n) return { send: true, wave: 0 }
  const score = sortitionScore(p.beta, weight)
  const wave = ticketWave(score, await p.history.reference(), {
    waves: ticketWaves(p.lastBlock - p.grantBlock),
  })
  // Wave w goes once the head is grant + w, so it lands in the window's block w + 1 or later.
  if (wave > 0) await p.untilBlock(p.grantBlock + wave - 1)
  const cutoff = await p.chain.cutoff(p.jobId).catch(() => undefined)
  if (cutoff === undefined || canBeSeated(score, cutoff)) return { send: true, wave }
  return { send: false, wave, cutoff: cutoff.score, score }
}
