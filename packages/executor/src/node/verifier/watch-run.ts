/**
 * A committee member watching one run (DESIGN flow 6): it challenges the executor over
 * `/digicap/attest/1.0.0` for the job's grant and key, again and again, and verifies the first
 * answer of each phase against the record registered on chain — `before` (PCR 23 at reset),
 * `during` (PCR 23 opens the grant's measurement, ADR 0021), `after` (PCR 23 reset, no reboot
 * since the before-quote, the clean-up report for this grant). The executor holds each phase
 * until the committee quoted it (phase-hold.ts). The watch ends at the after-quote, at the
 * first phase that fails (later phases then count as failed too) or after `watchMs`. While PCR
 * 23 holds a run of another grant, the watch waits: that run is not this job's during.
 *
 * With `forwarding` (ADR 0095) each challenge's nonce is the hash of the member's signed
 * `AttestChallenge`, each answer it verified is handed on (to be forwarded to the other
 * members), and a phase the executor withheld from this member — skipped (a later phase came
 * first) or never answered — is taken from another member's forwarded answer, verified here
 * exactly like an own one (same record, same activation, same phase rules). A forwarded answer
 * never replaces an own answer: it only fills a phase this member has none for.
 */
import {
  type ActivationCache,
  type AttestationRecord,
  type AttestationResponse,
  activateAttestationKey,
  attestationRecordHash,
  attestationResponse,
  checkEkCertificate,
  checkQuoteSequence,
  decodeAttestationRecord,
  type EkRoots,
  type Phase,
  type QuoteClock,
  requestAttestation,
  toWireEvidence,
  verifyAttestation,
} from '@digicap/attestation'
import { DigicapError, equalBytes } from '@digicap/capsule-core'
import { attestChallengeNonce, type SignedAttestChallenge } from '@digicap/committee'
import type { AttestEvidence, ProtocolDialer } from '@digicap/protocol'
import type { PeerId } from '@libp2p/interface'
import { ForwardRefusedError } from './errors.ts'
import type { ForwardedAnswer } from './forwarding.ts'
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
  /** Signed challenges and forwarded answers (ADR 0095); without it, random nonces. */
  readonly forwarding?: WatchForwarding | undefined
}

/** What a watch needs to challenge with checkable nonces and count forwarded answers. */
export interface WatchForwarding {
  /** A fresh signed challenge for this job (a recent block hash, the next counter). */
  challenge(): Promise<SignedAttestChallenge>
  /** Told once per phase this member verified from its own answer: forward it. */
  verified(phase: Phase, challenge: SignedAttestChallenge, evidence: AttestEvidence): void
  /** The forwarded answers kept for a phase (their challenges checked), first come first. */
  answers(phase: Phase): readonly ForwardedAnswer[]
  /** Told each forwarded answer whose quote this member refused (`wrong-phase`, `evidence`). */
  onRefused?: ((err: ForwardRefusedError) => void) | undefined
  /** How long a phase this member's watch skipped waits for a forwarded answer, ms. */
  readonly waitMs: number
}

export interface WatchedRun {
  /** before, during, after, in order. */
  readonly phases: PhaseVerdict[]
  readonly quotes: number
}

const PHASES: readonly Phase[] = ['before', 'during', 'after']
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The phase an answer shows for this job, or undefined while PCR 23 holds another grant's run.
 * The log runs from the reset before the current (or last) run: PCR 23 holds a run exactly when
 * the log does not end with a reset.
 */
function phaseOf(response: AttestationResponse, jobId: Uint8Array): Phase | undefined {
  const ran = response.cleanup !== undefined && equalBytes(response.cleanup.grantId, jobId)
  const measured = (response.eventLog.at(-1)?.kind ?? 'reset') !== 'reset'
  // PCR 23 holding another grant's run says nothing of this one yet (the executor may still be
  // inside an earlier job): not yet, ask again within the watch (a verified phase still needs
  // this grant's own events, whatever the log claims here).
  const grantEvent = response.eventLog.findLast((e) => e.kind === 'grant')
  if (!ran && measured && (grantEvent === undefined || !equalBytes(grantEvent.digest, jobId))) {
    return undefined
  }
  return ran ? 'after' : measured ? 'during' : 'before'
}

export async function watchRun(p: WatchRunParameters): Promise<WatchedRun> {
  const t0 = performance.now()
  const seen = new Map<Phase, PhaseVerdict>()
  const see = (phase: Phase, verdict: string, forwardedBy?: string) => {
    const v: PhaseVerdict = {
      phase,
      verdict,
      atMs: Math.round(performance.now() - t0),
      ...(forwardedBy === undefined ? {} : { forwardedBy }),
    }
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
  /**
   * The TPM clock of each verified phase. The phases must follow each other on one boot (before,
   * during, after): with forwarded answers (ADR 0095, review 135) a phase can be filled from a
   * quote taken at any time since the window, so a post-run quote stripped of its clean-up report
   * (which reads as a before) or one from after a reboot would otherwise serve as this member's
   * before, and the after's no-reboot check would run against it.
   */
  const clocks = new Map<Phase, QuoteClock>()
  /** @throws {QuoteVerificationError} a quote out of order with (or a reboot from) a phase seen. */
  const inOrder = (phase: Phase, clock: QuoteClock) => {
    const at = PHASES.indexOf(phase)
    for (const [other, seenClock] of clocks) {
      const i = PHASES.indexOf(other)
      if (i < at) checkQuoteSequence(seenClock, clock)
      else if (i > at) checkQuoteSequence(clock, seenClock)
    }
  }
  /**
   * Verifies `response` as this run's `phase` and keeps its TPM clock: one check for an own answer
   * and a forwarded one alike (ADR 0095), so the two cannot drift apart.
   * @throws {DigicapError} the quote does not verify, or is out of order with a phase seen.
   */
  const verifyPhase = (response: AttestationResponse, phase: Phase, key: AttestationRecord) => {
    const { attest } = verifyAttestation(response, {
      attestationKey: key,
      bootPcrs: key.bootPcrs,
      phase,
      ...(phase === 'during' ? { grant } : {}),
      ...(phase === 'after' && before !== undefined ? { previous: before } : {}),
    })
    inOrder(phase, attest.clockInfo)
    clocks.set(phase, attest.clockInfo)
    if (phase === 'before') before = attest.clockInfo
  }
  const forwarding = p.forwarding
  /**
   * Forwarded answers already judged here, each kept answer once (not by nonce: a colluder may
   * forward a copy of an honest member's challenge with other evidence or another phase, and
   * that must not use up the honest copy).
   */
  const tried = new WeakSet<ForwardedAnswer>()
  const refuse = (err: ForwardRefusedError) => {
    try {
      forwarding?.onRefused?.(err)
    } catch {
      // A reporting bug does not stop the watch.
    }
  }
  /**
   * A forwarded answer that verifies for `phase`, or undefined. Only against a record this member
   * holds and activated itself: a record it never activated could be a software AK.
   */
  const forwardedPass = (phase: Phase): ForwardedAnswer | undefined => {
    if (forwarding === undefined || record === undefined) return undefined
    if (!equalBytes(attestationRecordHash(record), p.registeredHash)) return undefined
    if (!p.activations.has(p.registeredHash)) return undefined
    if (p.ekRoots !== undefined) {
      try {
        checkEkCertificate(record, p.ekRoots)
      } catch {
        return undefined
      }
    }
    for (const answer of forwarding.answers(phase)) {
      if (tried.has(answer)) continue
      tried.add(answer)
      let response: AttestationResponse
      try {
        response = attestationResponse(answer.forward.evidence, {
          ...challenge,
          nonce: answer.nonce,
        })
      } catch (cause) {
        refuse(
          new ForwardRefusedError('evidence', 'The forwarded event log is malformed', { cause }),
        )
        continue
      }
      const shown = phaseOf(response, p.jobId)
      if (shown !== phase) {
        refuse(
          new ForwardRefusedError('wrong-phase', 'The forwarded quote shows another phase', {
            details: { claimed: phase, shown: shown ?? 'other-run', challenger: answer.challenger },
          }),
        )
        continue
      }
      try {
        verifyPhase(response, phase, record)
        return answer
      } catch (cause) {
        refuse(
          new ForwardRefusedError('evidence', 'The forwarded quote does not verify', {
            details: {
              check: cause instanceof DigicapError ? cause.code : 'error',
              challenger: answer.challenger,
            },
            cause,
          }),
        )
      }
    }
    return undefined
  }
  /** Fills a phase this member has no answer of from a forwarded one, waiting up to `ms`. */
  const fill = async (phase: Phase, ms: number): Promise<boolean> => {
    const until = performance.now() + ms
    for (;;) {
      const answer = forwardedPass(phase)
      if (answer !== undefined) {
        see(phase, 'verified', answer.challenger)
        return true
      }
      if (forwarding === undefined || performance.now() >= until || p.signal?.aborted) return false
      await sleep(Math.min(100, p.everyMs))
    }
  }
  /**
   * Whether forwarded answers cover every phase this member still lacks (then they are taken
   * and the watch ends: the executor is withholding the rest from this member, or is slower to
   * answer it than the others).
   */
  const coveredByForwards = (): boolean => {
    if (forwarding === undefined) return false
    const missing = PHASES.filter((phase) => !seen.has(phase))
    if (missing.length === 0 || missing.some((phase) => forwarding.answers(phase).length === 0)) {
      return false
    }
    for (const phase of missing) {
      const answer = forwardedPass(phase)
      if (answer === undefined) return false
      see(phase, 'verified', answer.challenger)
    }
    return true
  }
  while (!seen.has('after') && !failed() && !p.signal?.aborted) {
    if (performance.now() - t0 > p.watchMs) break
    if (coveredByForwards()) break
    let response: Awaited<ReturnType<typeof requestAttestation>>
    let signed: SignedAttestChallenge | undefined
    try {
      signed = await forwarding?.challenge()
      response = await requestAttestation(
        p.libp2p,
        p.peer,
        {
          ...challenge,
          ...(signed === undefined ? {} : { nonce: attestChallengeNonce(signed.signature) }),
        },
        {
          timeout: 5000,
          ...(p.signal === undefined ? {} : { signal: p.signal }),
        },
      )
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
    const phase = phaseOf(response, p.jobId)
    if (phase === undefined) {
      await sleep(p.everyMs)
      continue
    }
    // A phase first seen after a later one started was missed: the run did not wait for us
    // (or withheld it from us: another member's forwarded answer of it counts, ADR 0095).
    const index = PHASES.indexOf(phase)
    for (const earlier of PHASES.slice(0, index)) {
      if (!seen.has(earlier) && !(await fill(earlier, forwarding?.waitMs ?? 0))) {
        see(earlier, 'missed')
      }
    }
    if (seen.has(phase) || failed()) {
      if (!failed()) await sleep(p.everyMs)
      continue
    }
    try {
      verifyPhase(response, phase, record)
      see(phase, 'verified')
      if (signed !== undefined) {
        try {
          forwarding?.verified(
            phase,
            signed,
            toWireEvidence({
              ...response.quote,
              eventLog: response.eventLog,
              ...(response.cleanup === undefined ? {} : { cleanup: response.cleanup }),
            }),
          )
        } catch {
          // Forwarding is best effort: this member's own verdict stands.
        }
      }
    } catch (err) {
      see(phase, err instanceof DigicapError ? err.code : 'error')
    }
  }
  // Phases never answered: a forwarded answer may fill them (not after a failed phase).
  for (const phase of PHASES) {
    if (!seen.has(phase) && (failed() || !(await fill(phase, 0)))) see(phase, 'missed')
  }
  return { phases: PHASES.map((phase) => seen.get(phase) as PhaseVerdict), quotes }
}
