/**
 * Between the agent's quote and the `/digicap/attest/1.0.0` evidence message
 * (`@digicap/protocol`, SPEC-ATTEST.md): PCR values as 9 × 32 bytes in the order of PCRs
 * 0–7, 23; the event log as DGEL v1 bytes; the clean-up report as three flat fields.
 */
import { ATTEST_PCRS, type AttestEvidence } from '@digicap/protocol'
import { concatBytes } from '../bytes.ts'
import { decodeEventLog, encodeEventLog, type RunEvent } from '../event-log/format.ts'
import type { CleanupReport } from '../phases/phase.ts'
import type { QuoteEvidence } from '../verifier/verify-quote.ts'

/** Evidence as the verifier uses it. */
export interface ReceivedEvidence {
  quote: QuoteEvidence
  eventLog: RunEvent[]
  cleanup?: CleanupReport
  /** The attestation record bytes the executor sent (SPEC.md §9), unchecked. */
  record?: Uint8Array
}

export function toWireEvidence(q: {
  attest: Uint8Array
  signature: Uint8Array
  pcrValues: ReadonlyMap<number, Uint8Array>
  eventLog: readonly RunEvent[]
  cleanup?: CleanupReport
  record?: Uint8Array
}): AttestEvidence {
  return {
    attest: q.attest,
    signature: q.signature,
    pcrValues: concatBytes(...ATTEST_PCRS.map((p) => q.pcrValues.get(p) ?? new Uint8Array(0))),
    eventLog: encodeEventLog(q.eventLog),
    ...(q.cleanup === undefined ? {} : { cleanup: q.cleanup }),
    ...(q.record === undefined ? {} : { record: q.record }),
  }
}

/** @throws {EventLogFormatError} a malformed event log. */
export function fromWireEvidence(e: AttestEvidence): ReceivedEvidence {
  const pcrValues = new Map(
    ATTEST_PCRS.map((p, i) => [p, e.pcrValues.slice(i * 32, i * 32 + 32)] as const),
  )
  return {
    quote: { attest: e.attest, signature: e.signature, pcrValues },
    eventLog: decodeEventLog(e.eventLog),
    ...(e.cleanup === undefined ? {} : { cleanup: e.cleanup }),
    ...(e.record === undefined ? {} : { record: e.record }),
  }
}
