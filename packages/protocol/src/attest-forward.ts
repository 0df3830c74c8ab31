/**
 * `/digicap/attest-forward/1.0.0` (SPEC-ATTEST.md §6, ADR 0095): a committee member that got the
 * executor's answer to its signed challenge forwards both to the other members, so a member the
 * executor withheld that phase from can count it. The challenge is the member's EIP-712
 * `AttestChallenge` signature (`@digicap/committee`); the quote's nonce is its keccak-256. The
 * evidence fields are those of `attest-evidence` (without the record: every member reads the
 * registered one). Nothing here checks a signature or a quote: the receiver does.
 */

import { type AttestEvidence, decodeAttestEvidence } from './attest.ts'
import {
  checkFields,
  decodeEnvelope,
  encodeCanonical,
  MAX_U64,
  readBytes,
  readText,
  readUint,
  u64,
  WIRE_VERSION,
  type WireMap,
} from './cbor.ts'
import { WireFormatError } from './errors.ts'
import { MAX_CONTROL_FRAME } from './frame.ts'
import { encodeChecked, ID_LENGTH, SIGNATURE_LENGTH } from './messages.ts'
import type { WireProtocol } from './protocols.ts'

/** Member → member forwarded answer to a signed challenge. */
export const ATTEST_FORWARD_PROTOCOL = '/digicap/attest-forward/1.0.0'

/** The run phase a forwarded answer is claimed to show. */
export type AttestPhase = 'before' | 'during' | 'after'
export const ATTEST_PHASES: readonly AttestPhase[] = Object.freeze(['before', 'during', 'after'])

/**
 * What the receiver did with a forwarded answer: `kept` (it passed the challenge checks; its
 * quote is verified when the member needs that phase), `held` (the sender already forwarded an
 * answer for this phase, or the member holds a kept one: not checked), or the first refusal.
 */
export type AttestForwardStatus =
  | 'kept'
  | 'held'
  | 'unknown-job'
  | 'non-member'
  | 'signature'
  | 'unknown-block'
  | 'stale'
export const ATTEST_FORWARD_STATUSES: readonly AttestForwardStatus[] = Object.freeze([
  'kept',
  'held',
  'unknown-job',
  'non-member',
  'signature',
  'unknown-block',
  'stale',
])

export interface AttestForward {
  /** The challenged job (= grant id). */
  jobId: Uint8Array
  /** The block hash the challenger signed. */
  blockHash: Uint8Array
  /** The challenger's counter. */
  seq: bigint
  /** The challenger's `AttestChallenge` signature (65 bytes): the quote's nonce is its keccak-256. */
  challengeSignature: Uint8Array
  /** The phase the sender saw in this answer. */
  phase: AttestPhase
  /** The executor's answer, as it came (its `record` is not forwarded). */
  evidence: Omit<AttestEvidence, 'record'>
}

export interface AttestForwarded {
  status: AttestForwardStatus
}

const FORWARD = 'attest-forward'
const FORWARDED = 'attest-forwarded'
const CHALLENGE_FIELDS = ['jobId', 'blockHash', 'seq', 'challengeSignature', 'phase'] as const
const EVIDENCE_FIELDS = ['attest', 'signature', 'pcrValues', 'eventLog'] as const
const CLEANUP_FIELDS = ['cleanupGrantId', 'workspaceRemoved', 'keyBuffersWiped'] as const

function expect(type: string, expected: string): void {
  if (type !== expected) {
    throw new WireFormatError(`Expected a ${expected} message`, {
      details: { field: 't', reason: 'unexpected-type', expected, got: type.slice(0, 32) },
    })
  }
}

export function decodeAttestForward(body: Uint8Array): AttestForward {
  const { type, map } = decodeEnvelope(body)
  expect(type, FORWARD)
  checkFields(map, type, [...CHALLENGE_FIELDS, ...EVIDENCE_FIELDS], [...CLEANUP_FIELDS])
  const jobId = readBytes(map, type, 'jobId', ID_LENGTH)
  const blockHash = readBytes(map, type, 'blockHash', ID_LENGTH)
  const seq = readUint(map, type, 'seq', MAX_U64)
  const challengeSignature = readBytes(map, type, 'challengeSignature', SIGNATURE_LENGTH)
  const phase = readText<AttestPhase>(map, type, 'phase', { oneOf: ATTEST_PHASES })
  // The evidence fields, checked by the evidence codec (same limits, same cleanup rule).
  const inner: WireMap = { v: WIRE_VERSION, t: 'attest-evidence' }
  for (const f of [...EVIDENCE_FIELDS, ...CLEANUP_FIELDS])
    if (Object.hasOwn(map, f)) inner[f] = map[f]
  let evidence: AttestEvidence
  try {
    evidence = decodeAttestEvidence(encodeCanonical(inner))
  } catch (cause) {
    if (cause instanceof WireFormatError) {
      const details = cause.details as Record<string, unknown>
      throw new WireFormatError(cause.message.replace('attest-evidence', FORWARD), {
        details: { ...details, type: FORWARD },
      })
    }
    throw cause
  }
  return { jobId, blockHash, seq, challengeSignature, phase, evidence }
}

/** @throws {InvalidArgumentError} if a field has the wrong type or length. */
export function encodeAttestForward(message: AttestForward): Uint8Array {
  const e = message.evidence
  return encodeChecked(
    FORWARD,
    (): WireMap => ({
      v: WIRE_VERSION,
      t: FORWARD,
      jobId: message.jobId,
      blockHash: message.blockHash,
      seq: u64(message.seq),
      challengeSignature: message.challengeSignature,
      phase: message.phase,
      attest: e.attest,
      signature: e.signature,
      pcrValues: e.pcrValues,
      eventLog: e.eventLog,
      ...(e.cleanup === undefined
        ? {}
        : {
            cleanupGrantId: e.cleanup.grantId,
            workspaceRemoved: e.cleanup.workspaceRemoved,
            keyBuffersWiped: e.cleanup.keyBuffersWiped,
          }),
    }),
    decodeAttestForward,
  )
}

export function decodeAttestForwarded(body: Uint8Array): AttestForwarded {
  const { type, map } = decodeEnvelope(body)
  expect(type, FORWARDED)
  checkFields(map, type, ['status'])
  return {
    status: readText<AttestForwardStatus>(map, type, 'status', { oneOf: ATTEST_FORWARD_STATUSES }),
  }
}

/** @throws {InvalidArgumentError} for an unknown status. */
export function encodeAttestForwarded(message: AttestForwarded): Uint8Array {
  return encodeChecked(
    FORWARDED,
    () => ({ v: WIRE_VERSION, t: FORWARDED, status: message.status }),
    decodeAttestForwarded,
  )
}

/** `/digicap/attest-forward/1.0.0`: {@link AttestForward} → {@link AttestForwarded}. */
export const attestForwardProtocol: WireProtocol<AttestForward, AttestForwarded> = {
  id: ATTEST_FORWARD_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeAttestForward,
  decodeRequest: decodeAttestForward,
  encodeResponse: encodeAttestForwarded,
  decodeResponse: decodeAttestForwarded,
}
