/**
 * The verifier's side of `/digicap/attest/1.0.0`: challenge an executor with a fresh nonce for
 * one run, then verify the evidence for a phase (SPEC.md §2, §6, §7, §8) against the node's
 * registration.
 */
import { randomBytes } from 'node:crypto'
import {
  type AttestEvidence,
  attestProtocol,
  type ProtocolDialer,
  type RequestOptions,
  type RequestTarget,
  request,
} from '@digicap/protocol'
import { type PhaseExpectation, verifyPhase } from '../phases/phase.ts'
import { quoteBinding } from '../verifier/binding.ts'
import type { VerifiedQuote } from '../verifier/verify-quote.ts'
import { fromWireEvidence, type ReceivedEvidence } from './evidence.ts'

export interface AttestationChallenge {
  /** The grant asked about (32 bytes). */
  grantId: Uint8Array
  /** The run's X25519 ephemeral public key (32 bytes). */
  ephemeralKey: Uint8Array
  /**
   * The nonce to send (32 bytes); default 32 fresh random bytes. A committee member sends the
   * hash of its signed challenge, so the other members can check it (ADR 0095).
   */
  nonce?: Uint8Array | undefined
}

/** The evidence and the binding it must carry. */
export interface AttestationResponse extends ReceivedEvidence {
  /** The nonce this verifier drew. */
  nonce: Uint8Array
  /** H(nonce ‖ grant id ‖ ephemeral key): what the quote's extraData must be. */
  qualifyingData: Uint8Array
  grantId: Uint8Array
}

/**
 * Sends a challenge with a fresh 32-byte nonce and returns the decoded evidence. Nothing is
 * verified yet: pass it to {@link verifyAttestation}.
 *
 * @throws the wire errors of `@digicap/protocol`'s `request` (`WIRE_*`); `EVENT_LOG_FORMAT`
 *   for a malformed event log.
 */
export async function requestAttestation(
  node: ProtocolDialer,
  peer: RequestTarget,
  challenge: AttestationChallenge,
  options: RequestOptions = {},
): Promise<AttestationResponse> {
  const nonce = challenge.nonce ?? new Uint8Array(randomBytes(32))
  const evidence = await request(
    node,
    peer,
    attestProtocol,
    { nonce, grantId: challenge.grantId, ephemeralKey: challenge.ephemeralKey },
    options,
  )
  return attestationResponse(evidence, { ...challenge, nonce })
}

/**
 * The response a challenge with this nonce, grant and key would have drawn, from its wire
 * evidence: what {@link verifyAttestation} takes. For evidence that reached this verifier
 * another way (a committee member's forwarded answer, ADR 0095).
 *
 * @throws {EventLogFormatError} for a malformed event log.
 */
export function attestationResponse(
  evidence: AttestEvidence,
  challenge: AttestationChallenge & { nonce: Uint8Array },
): AttestationResponse {
  const qualifyingData = quoteBinding({
    nonce: challenge.nonce,
    grantId: challenge.grantId,
    ephemeralPublicKey: challenge.ephemeralKey,
  })
  return {
    ...fromWireEvidence(evidence),
    nonce: challenge.nonce,
    qualifyingData,
    grantId: challenge.grantId,
  }
}

/**
 * Verifies a response for a phase: the quote against the registration with this response's
 * own binding, the event log, the phase rules, and — after a run — the clean-up report for
 * the challenge's grant (`QUOTE_CLEANUP`).
 *
 * @throws {QuoteVerificationError} the first failing check.
 */
export function verifyAttestation(
  response: AttestationResponse,
  expected: Omit<PhaseExpectation, 'qualifyingData' | 'eventLog' | 'cleanup'>,
): VerifiedQuote {
  return verifyPhase(response.quote, {
    ...expected,
    qualifyingData: response.qualifyingData,
    eventLog: response.eventLog,
    ...(expected.phase === 'after'
      ? { cleanup: { report: response.cleanup, grantId: response.grantId } }
      : {}),
  })
}
