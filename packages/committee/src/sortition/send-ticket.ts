/**
 * A verifier's side of ADR 0065: when to send its ticket, read from the chain. The pure rules are
 * in `waves.ts`; this is their use by a node, against the few chain reads it needs
 * ({@link TicketChain}, which `VerifierChain` of `@digicap/executor` extends).
 */
import { REPUTATION_MAX, reputationAfter } from '../reputation/curve.ts'
import { selectionWeight } from './committee.ts'
import { MIN_SORTITION_WEIGHT, sortitionScore } from './score.ts'
import { canBeSeated, cutoffReference, type SeatCutoff, ticketWave, ticketWaves } from './waves.ts'

/** The chain reads a node needs to send its ticket in its wave. */
export interface TicketChain {
  blockNumber(): Promise<number>
  /** A node's stake (wei) and reputation, as the sortition reads them (NodeRegistry). */
  standing(address: string): Promise<{ stake: bigint; reputation: bigint }>
  /** `cutoffOf(jobId)` of CommitteeSortition. */
  cutoff(jobId: Uint8Array): Promise<SeatCutoff & { closed: boolean }>
  /** The seats so far (`committeeOf`). */
  seats(jobId: Uint8Array): Promise<{ members: readonly string[] }>
}

/** Longest a reference waits for cut-off reads in flight, ms (a hung RPC must not hold wave 0). */
const READ_WAIT_MS = 2000
/** Closed full committees' cut-offs kept (the reference is their median). */
const REMEMBERED = 16
/** Jobs waited on to close; older ones are dropped unread. */
const PENDING = 64
/**
 * Settled passes that may raise a node's reputation between its read of the seats and its
 * ticket's block (anyone may settle a job the node sat in). A ticket is left unsent only if
 * it is beaten even at the weight those passes would give.
 */
export const TICKET_PASSES_AHEAD = 4

/**
 * A node's selection weight after `passes` more settled passes of reputation (0: as it stands):
 * the highest weight it can have by its ticket's block, for `waitForWave` and the simulation.
 */
export function weightAhead(
  standing: { readonly stake: bigint; readonly reputation: bigint },
  passes: number,
): bigint {
  const reputation = Math.min(REPUTATION_MAX, Number(standing.reputation))
  return selectionWeight(standing.stake, BigInt(reputationAfter(passes, reputation)))
}

/** The cut-offs of the jobs a node saw, read once their windows closed. */
export interface CutoffHistory {
  /** A job to learn from once its window closed (`lastBlock`, when known: read only after it). */
  watch(jobId: Uint8Array, lastBlock?: number): void
  /** The reference cut-off at `head`: the median of the last closed full committees' cut-offs. */
  reference(head: number): Promise<bigint | undefined>
  /** Closed full committees known. */
  readonly size: number
}

/**
 * A node's memory of recent committees' cut-offs. Each job is read once its window has closed
 * (in parallel, at most {@link PENDING} waiting), counted once however many calls overlap, and
 * only if its committee filled.
 */
export function cutoffHistory(
  chain: Pick<TicketChain, 'cutoff'>,
  options: { readonly readWaitMs?: number } = {},
): CutoffHistory {
  const waitMs = options.readWaitMs ?? READ_WAIT_MS
  const pending = new Map<string, { jobId: Uint8Array; lastBlock: number | undefined }>()
  const reading = new Map<string, Promise<void>>()
  const cutoffs = new Map<string, bigint>()
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
  const wait = (id: string, jobId: Uint8Array, lastBlock: number | undefined) => {
    if (cutoffs.has(id) || reading.has(id)) return
    const known = pending.get(id)
    // A later watch that knows the window's last block replaces one that did not.
    if (known !== undefined && (known.lastBlock !== undefined || lastBlock === undefined)) return
    pending.set(id, { jobId, lastBlock })
    if (pending.size > PENDING) pending.delete(pending.keys().next().value as string)
  }
  /** Reads one job's cut-off; never rejects (a failed or odd answer is asked again later). */
  const read = async (
    id: string,
    jobId: Uint8Array,
    lastBlock: number | undefined,
    head: number,
  ) => {
    // never settles before the caller has it in `reading`
    await null
    let again = false
    try {
      const c = await chain.cutoff(jobId)
      if (!c.closed) again = true
      else if (c.full) {
        cutoffs.set(id, c.score)
        if (cutoffs.size > REMEMBERED) cutoffs.delete(cutoffs.keys().next().value as string)
      }
    } catch {
      // not readable, or not an answer
      again = true
    }
    reading.delete(id)
    // Asked again once the head has moved on.
    if (again) wait(id, jobId, Math.max(lastBlock ?? head, head))
  }
  return {
    watch(jobId, lastBlock) {
      wait(hex(jobId), jobId, lastBlock)
    },
    async reference(head) {
      // Taken out before any await: overlapping calls read each job once and share the reads.
      for (const [id, j] of [...pending]) {
        if (j.lastBlock !== undefined && head <= j.lastBlock) continue
        pending.delete(id)
        reading.set(id, read(id, j.jobId, j.lastBlock, head))
      }
      // Waits for the reads in flight, but not past `readWaitMs`: a hung endpoint delays a
      // wave by that much, and the answer comes from the cut-offs already known.
      if (reading.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          Promise.all(reading.values()),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, waitMs)
          }),
        ])
        clearTimeout(timer)
      }
      return cutoffReference([...cutoffs.values()])
    },
    get size() {
      return cutoffs.size
    },
  }
}

/** What {@link waitForWave} decided. */
export type TicketPlan =
  | {
      readonly send: true
      readonly wave: number
      /** Why it goes without the seats' say: a read failed, not eligible, the window closed. */
      readonly because?: 'unread' | 'ineligible' | 'closed'
    }
  | {
      readonly send: false
      readonly wave: number
      /** The last seat's score, and this ticket's best score by its transaction's block. */
      readonly cutoff: bigint
      readonly score: bigint
    }

/**
 * Waits for this ticket's wave and says whether to send it. The caller has read the seed, so
 * the head is past the grant block: wave 0 goes at once, wave w once the head is at grant + 1
 * + w (it sees every earlier wave landed, if the chain mined them). A ticket is left unsent
 * only when every seat holds a score at or below its best score by its transaction's block
 * (its weight read at the wave, with {@link TICKET_PASSES_AHEAD} more settled passes).
 *
 * It goes at once, as before waves, when a read fails (a missed wave costs gas, never a seat),
 * and when its weight is not eligible or the window closed (the chain says why). Throws only
 * what `untilBlock` throws.
 */
export async function waitForWave(p: {
  readonly chain: TicketChain
  readonly self: string
  readonly jobId: Uint8Array
  readonly beta: Uint8Array
  readonly grantBlock: number
  readonly lastBlock: number
  readonly history: CutoffHistory
  /** Resolves once the head is past `block`. */
  readonly untilBlock: (block: number) => Promise<void>
  /** Default {@link TICKET_PASSES_AHEAD}. */
  readonly passesAhead?: number
}): Promise<TicketPlan> {
  const { chain } = p
  const now = await chain.standing(p.self).catch(() => undefined)
  if (now === undefined) return { send: true, wave: 0, because: 'unread' }
  if (weightAhead(now, 0) < MIN_SORTITION_WEIGHT)
    return { send: true, wave: 0, because: 'ineligible' }
  const head = await chain.blockNumber().catch(() => p.grantBlock + 1)
  const reference = await p.history.reference(head)
  const wave = ticketWave(sortitionScore(p.beta, weightAhead(now, 0)), reference, {
    waves: ticketWaves(p.lastBlock - p.grantBlock),
  })
  if (wave > 0) await p.untilBlock(p.grantBlock + wave)
  // The seats and this node's weight, read together at its wave.
  const [cutoff, standing] = await Promise.all([
    chain.cutoff(p.jobId).catch(() => undefined),
    chain.standing(p.self).catch(() => undefined),
  ])
  if (cutoff === undefined || standing === undefined) return { send: true, wave, because: 'unread' }
  if (cutoff.closed) return { send: true, wave, because: 'closed' }
  if (weightAhead(standing, 0) < MIN_SORTITION_WEIGHT)
    return { send: true, wave, because: 'ineligible' }
  const best = sortitionScore(p.beta, weightAhead(standing, p.passesAhead ?? TICKET_PASSES_AHEAD))
  if (canBeSeated(best, cutoff)) return { send: true, wave }
  return { send: false, wave, cutoff: cutoff.score, score: best }
}
