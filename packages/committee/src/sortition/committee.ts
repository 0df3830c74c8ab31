import { SortitionError } from '../errors.ts'
import { sortitionScore } from './score.ts'

/** One node's entry for a job: its VRF output for the job seed and its weight. */
export interface Ticket {
  /** The node (an address or peer id); unique among the tickets. */
  readonly id: string
  /** The verified VRF output (beta, 32 bytes) for the job seed. */
  readonly beta: Uint8Array
  /** Selection weight, {@link selectionWeight}: stake × reputation, > 0. */
  readonly weight: bigint
}

/** A ticket with its score (lower wins). */
export interface RankedTicket extends Ticket {
  readonly score: bigint
}

/** Options of {@link drawCommittee}. */
export interface DrawCommitteeOptions {
  /** Faults tolerated: the committee has n = 3f + 1 seats. Default 1 (n = 4). */
  readonly faults?: number
}

/** n = 3f + 1: the smallest committee that reaches agreement with f Byzantine members. */
export function committeeSize(faults: number): number {
  if (!Number.isSafeInteger(faults) || faults < 0)
    throw new SortitionError('size', 'faults must be a non-negative integer', {
      details: { faults },
    })
  return 3 * faults + 1
}

/** Selection weight of a node: stake (wei) × reputation; 0 (not eligible) if either is ≤ 0. */
export function selectionWeight(stake: bigint, reputation: bigint): bigint {
  return stake > 0n && reputation > 0n ? stake * reputation : 0n
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/**
 * Ranks tickets by score, lowest first; ties by beta, then id. The contract keeps the earlier
 * ticket on a tie instead: the two differ only then (rare at the 2⁹⁶ scale, ADR 0024 amended).
 */
export function rankTickets(tickets: readonly Ticket[]): RankedTicket[] {
  const seen = new Set<string>()
  const ranked = tickets.map((t) => {
    if (seen.has(t.id))
      throw new SortitionError('duplicate-ticket', 'Two tickets have the same node id', {
        details: { id: t.id },
      })
    seen.add(t.id)
    if (typeof t.weight !== 'bigint' || t.weight <= 0n)
      throw new SortitionError('weight', 'A ticket has no positive weight', {
        details: { id: t.id },
        hint: 'Leave out nodes with no stake or no reputation: they are not eligible.',
      })
    if (!(t.beta instanceof Uint8Array) || t.beta.length !== 32)
      throw new SortitionError('ticket', 'A ticket output is not 32 bytes', {
        details: { id: t.id },
      })
    return { ...t, score: sortitionScore(t.beta, t.weight) }
  })
  return ranked.sort((a, b) =>
    a.score !== b.score
      ? a.score < b.score
        ? -1
        : 1
      : compareBytes(a.beta, b.beta) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  )
}

/**
 * The committee of a job: the n = 3f + 1 tickets with the lowest scores among those submitted
 * in the window (ADR 0024: top-k). The first member, the lowest score, leads. Each node's
 * chance of the first seat is exactly its weight's share; of any seat, its share to first
 * order (a weighted sample without replacement).
 *
 * @throws {SortitionError} `duplicate-ticket`, `weight`, `ticket`, `size`, or `too-few` when
 *   fewer than n tickets were submitted.
 * @example
 * ```ts
 * const committee = drawCommittee(tickets, { faults: 1 }) // 4 members, leader first
 * ```
 */
export function drawCommittee(
  tickets: readonly Ticket[],
  options: DrawCommitteeOptions = {},
): RankedTicket[] {
  const n = committeeSize(options.faults ?? 1)
  const ranked = rankTickets(tickets)
  if (ranked.length < n)
    throw new SortitionError('too-few', 'Fewer eligible tickets than committee seats', {
      details: { tickets: ranked.length, seats: n },
      hint: 'Wait for more submissions, or let the job time out.',
    })
  return ranked.slice(0, n)
}
