/**
 * Phase verdicts over a verified quote (SPEC.md §7): **before** a run (boot PCRs as registered,
 * PCR 23 at its reset value), **during** it (PCR 23 is this run's measurement), **after** it
 * (PCR 23 reset again, boot PCRs unchanged, no reset or restart since the before-quote).
 * After a run, the agent's clean-up report must name the run's grant and say the workspace is
 * gone and the key buffers are wiped (SPEC.md §8).
 */
import { createHash } from 'node:crypto'
import { InvalidArgumentError, requestMeasurement } from '@digicap/capsule-core'
import { equalBytes } from '../bytes.ts'
import { QuoteVerificationError } from '../errors.ts'
import type { RunEvent } from '../event-log/format.ts'
import { checkEventLog, PCR23_RESET_VALUE, replayEventLog } from '../event-log/replay.ts'
import type { QuoteClock } from '../verifier/clock.ts'
import {
  type QuoteEvidence,
  type QuoteExpectation,
  type VerifiedQuote,
  verifyQuote,
} from '../verifier/verify-quote.ts'

export type Phase = 'before' | 'during' | 'after'

/**
 * What the executor states after a run (SPEC.md §8): the run's workspace is removed and every
 * buffer that held a data key or the ephemeral private key is zeroed. Its PCR 23 reset is what
 * the after-quote proves.
 */
export interface CleanupReport {
  /** The run's grant id (32 bytes). */
  grantId: Uint8Array
  workspaceRemoved: boolean
  keyBuffersWiped: boolean
}

/** The values a run extends into PCR 23, in the SPEC order. */
export interface RunMeasurementParameters {
  runtimeDigest: Uint8Array
  capsuleHeaderHash: Uint8Array
  grantId: Uint8Array
  ephemeralPublicKey: Uint8Array
}

/** The PCR 23 events of a run (SPEC.md §6), the ephemeral key hashed with SHA-256. */
export function runEvents(run: RunMeasurementParameters): RunEvent[] {
  for (const [name, v] of [
    ['runtimeDigest', run.runtimeDigest],
    ['capsuleHeaderHash', run.capsuleHeaderHash],
    ['grantId', run.grantId],
  ] as const) {
    if (!(v instanceof Uint8Array) || v.length !== 32) {
      throw new InvalidArgumentError(`${name} must be 32 bytes`, { details: { name } })
    }
  }
  return [
    { kind: 'runtime', digest: run.runtimeDigest },
    { kind: 'capsule-header', digest: run.capsuleHeaderHash },
    { kind: 'grant', digest: run.grantId },
    {
      kind: 'ephemeral-key',
      digest: new Uint8Array(createHash('sha256').update(run.ephemeralPublicKey).digest()),
    },
  ]
}

/** PCR 23 after a run's four extends from the reset value. */
export function expectedRunMeasurement(run: RunMeasurementParameters): Uint8Array {
  return replayEventLog(runEvents(run))
}

/**
 * What a verifier knows of a run from its grant alone (ADR 0021): the request's
 * `measurement` (SHA-256(runtime digest ‖ capsule header hash), bound into the grant id), the
 * grant id and the grant's ephemeral key. The during-quote's event log must open the
 * measurement and add exactly this grant and key.
 */
export interface GrantMeasurement {
  /** The access request's measurement (32 bytes). */
  measurement: Uint8Array
  /** The grant id (32 bytes). */
  grantId: Uint8Array
  /** The grant's ephemeral public key. */
  ephemeralPublicKey: Uint8Array
}

/**
 * The run in PCR 23's log after its last reset, checked against a grant (ADR 0021): exactly
 * the four run events in SPEC order, the first two hashing to the grant's measurement, then
 * the grant id, then SHA-256 of the ephemeral key. Returns the runtime digest and header hash
 * the log opened the measurement to.
 *
 * @throws {QuoteVerificationError} `QUOTE_RUN_PCR` with `details.field` naming the event at fault.
 */
export function openRunMeasurement(
  eventLog: readonly RunEvent[],
  grant: GrantMeasurement,
): { runtimeDigest: Uint8Array; capsuleHeaderHash: Uint8Array } {
  let start = -1
  for (let i = eventLog.length - 1; i >= 0; i--) {
    if (eventLog[i]?.kind === 'reset') {
      start = i
      break
    }
  }
  const run = eventLog.slice(start + 1)
  const kinds = ['runtime', 'capsule-header', 'grant', 'ephemeral-key'] as const
  if (run.length !== kinds.length || run.some((e, i) => e.kind !== kinds[i])) {
    fail('QUOTE_RUN_PCR', 'PCR 23 does not hold exactly one run since its last reset', {
      field: 'eventLog',
      phase: 'during',
      kinds: run.map((e) => e.kind),
    })
  }
  const [runtime, header, grantEvent, keyEvent] = run as [RunEvent, RunEvent, RunEvent, RunEvent]
  if (!equalBytes(requestMeasurement(runtime.digest, header.digest), grant.measurement)) {
    fail('QUOTE_RUN_PCR', "The measured runtime and capsule are not the grant's measurement", {
      field: 'measurement',
      phase: 'during',
    })
  }
  if (!equalBytes(grantEvent.digest, grant.grantId)) {
    fail('QUOTE_RUN_PCR', 'PCR 23 measures another grant', { field: 'grantId', phase: 'during' })
  }
  const keyHash = new Uint8Array(createHash('sha256').update(grant.ephemeralPublicKey).digest())
  if (!equalBytes(keyEvent.digest, keyHash)) {
    fail('QUOTE_RUN_PCR', "PCR 23 measures another run's ephemeral key", {
      field: 'ephemeralKey',
      phase: 'during',
    })
  }
  return { runtimeDigest: runtime.digest.slice(), capsuleHeaderHash: header.digest.slice() }
}

export interface PhaseExpectation extends QuoteExpectation {
  phase: Phase
  /** The node's registered boot PCR values (0–7), by index. */
  bootPcrs: ReadonlyMap<number, Uint8Array>
  /** The PCR 23 event log the node sent with the quote. */
  eventLog: readonly RunEvent[]
  /** For `during`: the run the quote must measure, all four values known. */
  run?: RunMeasurementParameters
  /**
   * For `during`, instead of `run`: the grant only (its measurement, id and key). The log
   * must open the measurement ({@link openRunMeasurement}); what a keyguard or committee
   * member knows from the chain.
   */
  grant?: GrantMeasurement
  /** For `after`: the clock info of the run's accepted `before` quote (required: a reboot in between fails). */
  previous?: QuoteClock
  /**
   * For `after`: check the clean-up report the evidence carried (`report`, absent if it had
   * none) against the run's `grantId`. Omitted: the report is not checked.
   */
  cleanup?: { report: CleanupReport | undefined; grantId: Uint8Array }
}

function fail(
  code: 'QUOTE_BOOT_PCRS' | 'QUOTE_RUN_PCR' | 'QUOTE_CLEANUP',
  shortMessage: string,
  details: Record<string, unknown>,
): never {
  throw new QuoteVerificationError(code, shortMessage, { details })
}

/**
 * Verifies a quote (SPEC.md §2), its event log (§6), then the phase's PCR rules (§7).
 *
 * @throws {QuoteVerificationError} the first failing check; `QUOTE_BOOT_PCRS`, `QUOTE_RUN_PCR`, `QUOTE_CLEANUP` for the phase rules.
 * @throws {InvalidArgumentError} a phase without what it needs (`run` for during, `previous` for after).
 */
export function verifyPhase(evidence: QuoteEvidence, expected: PhaseExpectation): VerifiedQuote {
  if (expected.phase === 'during' && expected.run === undefined && expected.grant === undefined) {
    throw new InvalidArgumentError('The during phase needs the run or the grant', {
      details: { name: 'run' },
    })
  }
  if (expected.phase === 'after' && expected.previous === undefined) {
    throw new InvalidArgumentError('The after phase needs the before-quote clock', {
      details: { name: 'previous' },
    })
  }
  const pcrs = expected.pcrs ?? [0, 1, 2, 3, 4, 5, 6, 7, 23]
  if (!pcrs.includes(23) || [0, 1, 2, 3, 4, 5, 6, 7].some((p) => !pcrs.includes(p))) {
    throw new InvalidArgumentError('A phase quote covers PCRs 0–7 and 23', { details: { pcrs } })
  }
  const verified = verifyQuote(evidence, expected)
  const pcr23 = evidence.pcrValues.get(23) ?? new Uint8Array()
  checkEventLog(expected.eventLog, pcr23)
  for (let i = 0; i <= 7; i++) {
    const want = expected.bootPcrs.get(i)
    const got = evidence.pcrValues.get(i)
    if (want === undefined || got === undefined || !equalBytes(want, got)) {
      fail('QUOTE_BOOT_PCRS', 'A boot PCR differs from the registered value', {
        field: `pcrValues[${i}]`,
        pcr: i,
      })
    }
  }
  if (expected.phase === 'during' && expected.run === undefined && expected.grant !== undefined) {
    // The log replays to the quoted PCR 23 (checked above), so what it opens is what PCR 23 holds.
    openRunMeasurement(expected.eventLog, expected.grant)
    return verified
  }
  const want =
    expected.phase === 'during' && expected.run !== undefined
      ? expectedRunMeasurement(expected.run)
      : PCR23_RESET_VALUE
  if (!equalBytes(pcr23, want)) {
    fail(
      'QUOTE_RUN_PCR',
      expected.phase === 'during'
        ? "PCR 23 is not this run's measurement"
        : 'PCR 23 is not at its reset value',
      {
        field: 'pcrValues[23]',
        phase: expected.phase,
      },
    )
  }
  if (expected.phase === 'after' && expected.cleanup !== undefined) {
    checkCleanup(expected.cleanup.report, expected.cleanup.grantId)
  }
  return verified
}

/** @throws {QuoteVerificationError} `QUOTE_CLEANUP`. */
export function checkCleanup(report: CleanupReport | undefined, grantId: Uint8Array): void {
  if (report === undefined)
    fail('QUOTE_CLEANUP', 'No clean-up report after the run', { field: 'cleanup' })
  if (!equalBytes(report.grantId, grantId)) {
    fail('QUOTE_CLEANUP', 'The clean-up report is for another grant', { field: 'cleanup.grantId' })
  }
  if (report.workspaceRemoved !== true) {
    fail('QUOTE_CLEANUP', 'The run workspace was not removed', {
      field: 'cleanup.workspaceRemoved',
    })
  }
  if (report.keyBuffersWiped !== true) {
    fail('QUOTE_CLEANUP', 'Key buffers were not wiped', { field: 'cleanup.keyBuffersWiped' })
  }
}
