/**
 * The reputation curve: reputation is earned from settled, attested runs and lost on evidence,
 * never granted. Pure integer functions, so the settlement contract can apply the same rule.
 *
 * - A new node starts at {@link REPUTATION_INITIAL} (1), below the `minReputation(50)` that
 *   policies use and with a weight (stake × reputation) a few hundred times below an
 *   established node's: a fresh address buys almost no selection odds with stake alone.
 * - Each settled pass adds max(1, ⌊r·(MAX − r) / (16·MAX)⌋): +1 per run while r is small, so
 *   every identity pays ~41 settled runs to reach 50, then logistic growth to MAX (93 runs to
 *   500). A Sybil with k fresh addresses pays k times that.
 * - A fail verdict halves reputation; an equivocation proof sets it to 0 (a new address would
 *   start at 1: re-registering gains nothing). A timeout changes nothing.
 * - 0 is final: a pass from 0 gives nothing, so `minReputation(1)` keeps out every node ever
 *   brought to 0 (a fresh node caught failing once, any node caught equivocating).
 */

/** The highest reputation (NodeRegistry's MAX_REPUTATION). */
export const REPUTATION_MAX = 1000
/** Where a newly registered node starts. */
export const REPUTATION_INITIAL = 1
/** The growth divisor: larger is slower. */
export const REPUTATION_GROWTH_DIVISOR = 16

/** What the settlement reports about a node's part in a job. */
export type ReputationEvent =
  /** A settled run or committee verdict with a pass, attested. */
  | 'pass'
  /** A fail verdict against the node (its run failed attestation, or it voted against the certificate's evidence). */
  | 'fail'
  /** Two conflicting signed votes: proof of equivocation. */
  | 'equivocation'
  /** No certificate in time: no evidence either way. */
  | 'timeout'

function assertReputation(r: number): void {
  if (!Number.isSafeInteger(r) || r < 0 || r > REPUTATION_MAX)
    throw new RangeError(`reputation must be an integer in 0..${REPUTATION_MAX}`)
}

/**
 * Reputation after one event.
 *
 * @throws {RangeError} for a reputation outside 0..MAX or an unknown event.
 * @example
 * ```ts
 * nextReputation(REPUTATION_INITIAL, 'pass') // 2
 * nextReputation(600, 'fail')                // 300
 * ```
 */
export function nextReputation(r: number, event: ReputationEvent): number {
  assertReputation(r)
  switch (event) {
    case 'pass':
      // 0 is final (a fail at 1, an equivocation): one pass must not re-admit a caught node to
      // `minReputation(1)` policies (NodeRegistry.recordPass, ADR 0027 amended).
      if (r === 0) return 0
      return Math.min(
        REPUTATION_MAX,
        r +
          Math.max(
            1,
            Math.floor((r * (REPUTATION_MAX - r)) / (REPUTATION_GROWTH_DIVISOR * REPUTATION_MAX)),
          ),
      )
    case 'fail':
      return Math.floor(r / 2)
    case 'equivocation':
      return 0
    case 'timeout':
      return r
    default:
      throw new RangeError(`unknown reputation event ${String(event)}`)
  }
}

/** Reputation after `passes` settled passes from `start` (default: a new node). */
export function reputationAfter(passes: number, start = REPUTATION_INITIAL): number {
  let r = start
  for (let i = 0; i < passes && r < REPUTATION_MAX; i++) r = nextReputation(r, 'pass')
  return r
}

/** Settled passes a node starting at `start` needs to reach `target` (≤ MAX); `Infinity` from 0 (final). */
export function passesToReach(target: number, start = REPUTATION_INITIAL): number {
  assertReputation(target)
  let r = start
  let passes = 0
  if (r === 0 && target > 0) return Number.POSITIVE_INFINITY
  while (r < target) {
    r = nextReputation(r, 'pass')
    passes++
  }
  return passes
}
