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
  const details = {
    previous: {
      clock: previous.clock,
      resetCount: previous.resetCount,
      restartCount: previous.restartCount,
    },
    current: {
      clock: current.clock,
      resetCount: current.resetCount,
      restartCount: current.restartCount,
    },
  }
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
