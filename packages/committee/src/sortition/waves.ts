/**
 * When a verifier sends its ticket (ADR 0065). Top-k sortition lets every eligible verifier
 * submit, and each submission is a VRF proof checked on chain (~65–160k gas): with N verifiers a
 * job would cost N proofs, and past a few hundred verifiers more than a block holds. A ticket goes
 * in a wave that grows with its score against the cut-offs of recent committees, and is not sent
 * at all once the seats are full of better ones. The committee is the one every ticket would
 * have made: seats only get better during a window, so a ticket skipped as beaten could not have
 * been seated.
 */
import { SortitionError } from '../errors.ts'

/** A job's seats as they stand (`cutoffOf` of CommitteeSortition). */
export interface SeatCutoff {
  /** Every seat is taken. */
  readonly full: boolean
  /** The last seat's score when `full` (a ticket must score below it to be seated). */
  readonly score: bigint
}

/** Options of {@link ticketWave}. */
export interface TicketWaveOptions {
  /** Waves in the window (≥ 1, `ticketWaves(window)`); wave w is sent once the head is at grant + 1 + w. */
  readonly waves: number
  /** A ticket scoring at most `margin` × the reference cut-off goes in wave 0. Default 2. */
  readonly margin?: number
}

/**
 * Most waves a window is split into: with the default margin the last wave starts at 2¹⁶× the
 * reference (a ticket goes in wave 0 up to 2×, and each wave doubles the bound), so only a
 * reference more than ~30,000× too low piles tickets into the last wave. 8 waves (256×) did with
 * every stake ÷1,024 over 1,000 simulated nodes; 16 did not.
 */
export const MAX_TICKET_WAVES = 16

/**
 * Whether a ticket can still be seated. `false` once every seat is taken by a score at or below
 * it: the contract seats only a score below the last seat's, and a seat is only ever replaced by
 * a better one, so such a ticket would cost its gas and change nothing.
 */
export function canBeSeated(score: bigint, cutoff: SeatCutoff): boolean {
  return !cutoff.full || score < cutoff.score
}

/**
 * The reference cut-off: the median last-seat score of recent full committees (`undefined` with
 * none). A committee's last seat is the n-th lowest of all scores, so it moves with the total
 * weight of the verifiers and little from job to job; the median ignores one odd job.
 */
export function cutoffReference(recent: readonly bigint[]): bigint | undefined {
  if (recent.length === 0) return undefined
  const sorted = [...recent].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return sorted[(sorted.length - 1) >> 1]
}

/**
 * How many waves a window of `windowBlocks` leaves room for: one block each, at most
 * {@link MAX_TICKET_WAVES}. A node reads the seed from the window's first block on (head =
 * grant + 1) and sends wave w once the head is at grant + 1 + w, so wave w lands from block
 * grant + 2 + w; the last wave lands two blocks before the window closes.
 */
export function ticketWaves(windowBlocks: number): number {
  if (!Number.isSafeInteger(windowBlocks) || windowBlocks < 1)
    throw new SortitionError('window', 'A sortition window is a positive number of blocks', {
      details: { windowBlocks },
    })
  return Math.max(1, Math.min(MAX_TICKET_WAVES, windowBlocks - 3))
}

/**
 * The wave of a ticket: 0 (at once) with no reference or a score at most `margin` × the
 * reference; else the k with score ≤ margin × reference × 2ᵏ, at most `waves` − 1. The best
 * tickets land first, and a later wave finds the seats full of them and sends nothing
 * ({@link canBeSeated}). A wrong reference costs gas (too high) or blocks (too low), never a
 * seat: every ticket still in the running is sent before the window closes.
 *
 * @example
 * ```ts
 * const wave = ticketWave(myScore, cutoffReference(recentCutoffs), { waves: ticketWaves(window) })
 * // wait for block first + wave, then: if (canBeSeated(myScore, await cutoffOf(jobId))) submit()
 * ```
 */
export function ticketWave(
  score: bigint,
  reference: bigint | undefined,
  options: TicketWaveOptions,
): number {
  const { waves } = options
  const margin = options.margin ?? 2
  if (!Number.isSafeInteger(waves) || waves < 1)
    throw new SortitionError('window', 'Waves must be a positive integer', { details: { waves } })
  if (!Number.isSafeInteger(margin) || margin < 1)
    throw new SortitionError('window', 'The wave margin must be a positive integer', {
      details: { margin },
    })
  if (reference === undefined || reference <= 0n) return 0
  let bound = reference * BigInt(margin)
  let wave = 0
  while (score > bound && wave < waves - 1) {
    bound *= 2n
    wave++
  }
  return wave
}
