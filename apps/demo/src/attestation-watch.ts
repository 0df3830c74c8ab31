/**
 * The demo as a verifier (what a committee member does, issue #15): while the executor runs a
 * capsule, challenge its TPM over `/digicap/attest/1.0.0` for that run's grant and key, and
 * verify each answer against the record registered on chain — the first `before` (PCR 23 at
 * reset), the first `during` (PCR 23 opens the grant's measurement, ADR 0021) and the first
 * `after` (PCR 23 reset, no reboot, the clean-up report for this grant). Only what was
 * actually seen is reported: a phase whose window passed between two quotes stays `missed`.
 */
import {
  attestationRecordHash,
  decodeAttestationRecord,
  type Phase,
  type QuoteClock,
  requestAttestation,
  verifyAttestation,
} from '@digicap/attestation'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

export interface PhaseSeen {
  phase: Phase
  /** `verified`, or the refusal's code, or `missed` when no quote fell in the phase's window. */
  verdict: string
  /** Milliseconds since the watch began. */
  atMs?: number
}

export interface WatchedRun {
  grantId: Uint8Array
  ephemeralKey: Uint8Array
  measurement: Uint8Array
}

export interface AttestationWatch {
  phases: PhaseSeen[]
  quotes: number
}

const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

/** The pause after a failed challenge: doubles from the first to the last, reset by an answer. */
export const RETRY_FIRST_MS = 25
export const RETRY_MAX_MS = 400

/**
 * The phase an answer shows: `after` once it carries this grant's clean-up report, `during`
 * while PCR 23 holds a run, else `before`. The agent's log runs from the reset before the
 * current (or last) run — after a first run it holds that run plus its reset — so PCR 23 holds
 * a run exactly when the log does not end with a reset (as the verifier node decides).
 */
export function phaseOfAnswer(
  response: { eventLog: readonly { kind: string }[]; cleanup?: { grantId: Uint8Array } },
  grantId: Uint8Array,
): Phase {
  if (response.cleanup !== undefined && equal(response.cleanup.grantId, grantId)) return 'after'
  return (response.eventLog.at(-1)?.kind ?? 'reset') !== 'reset' ? 'during' : 'before'
}

/**
 * Challenges `peer` in a loop until the after-phase is verified or `done` resolves.
 * `run` resolves once the grant is on chain (its id, key and measurement).
 */
export async function watchAttestation(p: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  peer: string
  registeredHash: Uint8Array
  run: Promise<WatchedRun>
  done: Promise<unknown>
}): Promise<AttestationWatch> {
  const t0 = performance.now()
  let finished = false
  p.done.then(
    () => {
      finished = true
    },
    () => {
      finished = true
    },
  )
  const run = await Promise.race([p.run, p.done.then(() => undefined)])
  const seen = new Map<Phase, PhaseSeen>()
  let quotes = 0
  if (run !== undefined) {
    const peer = peerIdFromString(p.peer)
    let before: QuoteClock | undefined
    let first: QuoteClock | undefined
    const grant = {
      measurement: run.measurement,
      grantId: run.grantId,
      ephemeralPublicKey: run.ephemeralKey,
    }
    // A failed challenge (not connected yet, stopping, between two answers) is tried again after
    // a pause: a dial that fails at once (no address known yet) retried without one spun this
    // loop thousands of times a second and filled the heap with libp2p's dial jobs.
    let pause = RETRY_FIRST_MS
    const wait = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms)
        p.done
          .finally(() => {
            clearTimeout(timer)
            resolve()
          })
          .catch(() => {})
      })
    while (!finished && !seen.has('after')) {
      let response: Awaited<ReturnType<typeof requestAttestation>>
      try {
        response = await requestAttestation(
          p.libp2p,
          peer,
          { grantId: run.grantId, ephemeralKey: run.ephemeralKey },
          { timeout: 2000 },
        )
      } catch {
        await wait(pause)
        pause = Math.min(pause * 2, RETRY_MAX_MS)
        continue
      }
      pause = RETRY_FIRST_MS
      quotes++
      if (response.record === undefined) continue
      const record = decodeAttestationRecord(response.record)
      if (!equal(attestationRecordHash(record), p.registeredHash)) {
        seen.set('before', { phase: 'before', verdict: 'record-mismatch' })
        break
      }
      const base = { attestationKey: record, bootPcrs: record.bootPcrs }
      const phase = phaseOfAnswer(response, run.grantId)
      if (seen.has(phase)) continue
      let verdict = 'verified'
      try {
        const { attest } = verifyAttestation(response, {
          ...base,
          phase,
          ...(phase === 'during' ? { grant } : {}),
          ...(phase === 'after' && (before ?? first) ? { previous: (before ?? first)! } : {}),
        })
        first ??= attest.clockInfo
        if (phase === 'before') before = attest.clockInfo
      } catch (err) {
        verdict = (err as { code?: string }).code ?? 'error'
      }
      seen.set(phase, { phase, verdict, atMs: Math.round(performance.now() - t0) })
    }
  }
  return {
    quotes,
    phases: (['before', 'during', 'after'] as const).map(
      (phase) => seen.get(phase) ?? { phase, verdict: 'missed' },
    ),
  }
}
