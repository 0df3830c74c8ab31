/**
 * Replaying the PCR 23 event log: from the reset value (32 zero bytes), each event extends
 * `pcr = SHA-256(pcr ‖ digest)` as TPM2_PCR_Extend does, and a `reset` event sets it back to
 * zero (TPM2_PCR_Reset, allowed for PCR 23 at locality 0).
 */
import { createHash } from 'node:crypto'
import { equalBytes } from '../bytes.ts'
import { QuoteVerificationError } from '../errors.ts'
import type { RunEvent } from './format.ts'

/** The value of PCR 23 after TPM2_PCR_Reset. */
export const PCR23_RESET_VALUE: Uint8Array = new Uint8Array(32)

export function replayEventLog(events: readonly RunEvent[]): Uint8Array {
  let pcr = PCR23_RESET_VALUE
  for (const e of events) {
    pcr =
      e.kind === 'reset'
        ? new Uint8Array(32)
        : new Uint8Array(createHash('sha256').update(pcr).update(e.digest).digest())
  }
  return pcr
}

/**
 * Checks that the log replays to the quoted PCR 23 value (take it from the `pcrValues` a
 * verified quote's digest covers).
 *
 * @throws {QuoteVerificationError} `QUOTE_EVENT_LOG`.
 */
export function checkEventLog(events: readonly RunEvent[], pcr23: Uint8Array): void {
  if (!equalBytes(replayEventLog(events), pcr23)) {
    throw new QuoteVerificationError(
      'QUOTE_EVENT_LOG',
      'The event log does not replay to the quoted PCR 23',
      {
        details: { field: 'eventLog', events: events.length },
      },
    )
  }
}
