/**
 * Per-node monotonicity of the TPM clock and its boot counters. resetCount grows on a TPM
 * Reset (power loss, reboot), restartCount on a TPM Restart or Resume; clock only grows while
 * both stay put. Anything going backwards is a replayed or forged quote.
 */
import { QuoteVerificationError } from '../errors.ts'
import type { QuoteClockInfo } from '../tpm/attest.ts'

export type QuoteClock = Pick<QuoteClockInfo, 'clock' | 'resetCount' | 'restartCount'>

/**
 * Checks `current` against the node's previous accepted quote.
 *
 * @throws {QuoteVerificationError} `QUOTE_CLOCK` (rollback), `QUOTE_REBOOT` (resetCount grew),
 * `QUOTE_RESTART` (restartCount grew).
 */
export function checkQuoteSequence(previous: QuoteClock, current: QuoteClock): void {
  const details = clockDetails(previous, current)
  if (current.resetCount < previous.resetCount) {
    throw new QuoteVerificationError('QUOTE_CLOCK', 'resetCount went backwards', {
      details: { field: 'clockInfo.resetCount', ...details },
    })
  }
  if (current.resetCount > previous.resetCount) {
    throw new QuoteVerificationError('QUOTE_REBOOT', 'The TPM was reset since the previous quote', {
      details: { field: 'clockInfo.resetCount', ...details },
    })
  }
  if (current.restartCount < previous.restartCount) {
    throw new QuoteVerificationError('QUOTE_CLOCK', 'restartCount went backwards', {
      details: { field: 'clockInfo.restartCount', ...details },
    })
  }
  if (current.restartCount > previous.restartCount) {
    throw new QuoteVerificationError(
      'QUOTE_RESTART',
      'The TPM was restarted or resumed since the previous quote',
      {
        details: { field: 'clockInfo.restartCount', ...details },
      },
    )
  }
  if (current.clock < previous.clock) {
    throw new QuoteVerificationError('QUOTE_CLOCK', 'The TPM clock went backwards', {
      details: { field: 'clockInfo.clock', ...details },
    })
  }
}

/**
 * The release gate's check across runs: unlike {@link checkQuoteSequence} (one run's phases,
 * where any reboot is a finding), a reboot or restart between two releases is an honest event
 * that opens a new epoch, so only going backwards is refused. Compared as the tuple
 * (resetCount, restartCount, clock): a clock that fell back after a reset is fine.
 *
 * @throws {QuoteVerificationError} `QUOTE_CLOCK` when `current` is older than `previous`.
 */
export function checkQuoteRollback(previous: QuoteClock, current: QuoteClock): void {
  const order =
    compare(current.resetCount, previous.resetCount) ||
    compare(current.restartCount, previous.restartCount) ||
    compare(current.clock, previous.clock)
  if (order >= 0) return
  throw new QuoteVerificationError('QUOTE_CLOCK', 'The quote is older than one accepted before', {
    details: { field: 'clockInfo', ...clockDetails(previous, current) },
  })
}

function compare(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Both clocks for an error's details (the counters only: no other quote bytes). */
function clockDetails(previous: QuoteClock, current: QuoteClock) {
  const pick = (c: QuoteClock) => ({
    clock: c.clock,
    resetCount: c.resetCount,
    restartCount: c.restartCount,
  })
  return { previous: pick(previous), current: pick(current) }
}
