/**
 * A committee member watching one run (DESIGN flow 6): it challenges the executor over
 * `/digicap/attest/1.0.0` for the job's grant and key, again and again, and verifies the first
 * answer of each phase against the record registered on chain — `before` (PCR 23 at reset),
 * `during` (PCR 23 opens the grant's measurement, ADR 0021), `after` (PCR 23 reset, no reboot
 * since the before-quote, the clean-up report for this grant). The executor holds each phase
 * until the committee quoted it (phase-hold.ts). The watch ends at the after-quote, at the
 * first phase that fails (later phases then count as failed too) or after `watchMs`. While PCR
 * 23 holds a run of another grant, the watch waits: that run is not this job's during.
 */
import {
  type ActivationCache,
  type AttestationRecord,
  activateAttestationKey,
  attestationRecordHash,
  checkEkCertificate,
  decodeAttestationRecord,
  type EkRoots,
  type Phase,
  type QuoteClock,
  requestAttestation,
  verifyAttestation,
} from '@digicap/attestation'
import { DigicapError, equalBytes } from '@digicap/capsule-core'
import type { ProtocolDialer } from '@digicap/protocol'
import type { PeerId } from '@libp2p/interface'
import type { JobGrant, PhaseVerdict } from './types.ts'

export interface WatchRunParameters {
  readonly libp2p: ProtocolDialer
  readonly peer: PeerId
  readonly jobId: Uint8Array
  readonly grant: JobGrant
  /** NodeRegistry `attestationKeyHash` of the executor. */
  readonly registeredHash: Uint8Array
  /** The executor's record, if known; default: the one it sends with its evidence. */
  readonly record?: AttestationRecord | undefined
  /** Record hashes whose AK was activated against its EK already. */
  readonly activations: ActivationCache
  /** The TPM makers' CA certificates the record's EK must be certified by (ADR 0069). */
  readonly ekRoots?: EkRoots | undefined
  readonly watchMs: number
  readonly everyMs: number
  readonly signal?: AbortSignal | undefined
  readonly onPhase?: ((phase: PhaseVerdict) => void) | undefined
}

export interface WatchedRun {
  /** before, during, after, in order. */
  readonly phases: PhaseVerdict[]
  readonly quotes: number
}

const PHASES: readonly Phase[] = ['before', 'during', 'after']
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function watchRun(p: WatchRunParameters): Promise<WatchedRun> {
  const t0 = performance.now()
  const seen = new Map<Phase, PhaseVerdict>()
  const see = (phase: Phase, verdict: string) => {
    const v = { phase, verdict, atMs: Math.round(performance.now() - t0) }
    seen.set(phase, v)
    p.onPhase?.(v)
  }
  const challenge = { grantId: p.jobId, ephemeralKey: p.grant.ephemeralKey }
  const grant = {
    measurement: p.grant.measurement,
    grantId: p.jobId,
    ephemeralPublicKey: p.grant.ephemeralKey,
  }
  let record = p.record
  let before: QuoteClock | undefined
  let quotes = 0
  let activationTries = 0
  const failed = () => [...seen.values()].some((v) => v.verdict !== 'verified')
  while (!seen.has('after') && !failed() && !p.signal?.aborted) {
    if (performance.now() - t0 > p.watchMs) break
    let response: Awaited<ReturnType<typeof requestAttestation>>
    try {
      response = await requestAttestation(p.libp2p, p.peer, challenge, {
        timeout: 5000,
        ...(p.signal === undefined ? {} : { signal: p.signal }),
      })
    } catch {
      await sleep(p.everyMs) // unreachable for now, or between two answers
      continue
    }
    quotes++
    if (record === undefined) {
      try {
        if (response.record === undefined) throw new Error('no record')
        record = decodeAttestationRecord(response.record)
      } catch {
        see('before', 'record-mismatch')
        break
      }
    }
    if (!equalBytes(attestationRecordHash(record), p.registeredHash)) {
      see('before', 'record-mismatch')
      break
    }
    // before the cache, every time: an activation cached without roots is not trusted here
    if (p.ekRoots !== undefined) {
      try {
        checkEkCertificate(record, p.ekRoots)
      } catch {
        see('before', 'not-activated')
        break
      }
    }
    if (!p.activations.has(p.registeredHash)) {
      // Once per record: the AK lives in the TPM of the record's EK (SPEC.md §5). A refusal is
      // evidence; a timeout on a busy TPM is not, so that is tried again (3 times).
      try {
        await activateAttestationKey(p.libp2p, p.peer, record, {
          timeout: 20_000,
          ...(p.ekRoots === undefined ? {} : { ekRoots: p.ekRoots }),
        })
        p.activations.add(p.registeredHash)
      } catch (err) {
        const unreachable =
          err instanceof DigicapError &&
          (err.details as { reason?: string })?.reason === 'unreachable'
        if (unreachable && ++activationTries < 3) continue
        see('before', 'not-activated')
        break
      }
    }
    const ran = response.cleanup !== undefined && equalBytes(response.cleanup.grantId, p.jobId)
    // The log runs from the reset before the current (or last) run: PCR 23 holds a run
    // exactly when the log does not end with a reset.
    const measured = (response.eventLog.at(-1)?.kind ?? 'reset') !== 'reset'
    // PCR 23 holding another grant's run says nothing of this one yet (the executor may still be
    // inside an earlier job): not yet, ask again within the watch (a verified phase still needs
    // this grant's own events, whatever the log claims here).
    const grantEvent = response.eventLog.findLast((e) => e.kind === 'grant')
    if (!ran && measured && (grantEvent === undefined || !equalBytes(grantEvent.digest, p.jobId))) {
      await sleep(p.everyMs)
      continue
    }
    const phase: Phase = ran ? 'after' : measured ? 'during' : 'before'
    // A phase first seen after a later one started was missed: the run did not wait for us.
    const index = PHASES.indexOf(phase)
    for (const earlier of PHASES.slice(0, index)) {
      if (!seen.has(earlier)) see(earlier, 'missed')
    }
    if (seen.has(phase) || failed()) {
      if (!failed()) await sleep(p.everyMs)
      continue
    }
    try {
      const { attest } = verifyAttestation(response, {
        attestationKey: record,
        bootPcrs: record.bootPcrs,
        phase,
        ...(phase === 'during' ? { grant } : {}),
        ...(phase === 'after' && before !== undefined ? { previous: before } : {}),
      })
      if (phase === 'before') before = attest.clockInfo
      see(phase, 'verified')
    } catch (err) {
      see(phase, err instanceof DigicapError ? err.code : 'error')
    }
  }
  for (const phase of PHASES) if (!seen.has(phase)) see(phase, 'missed')
  return { phases: PHASES.map((phase) => seen.get(phase) as PhaseVerdict), quotes }
}
