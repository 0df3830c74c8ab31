/**
 * `/digicap/attest/1.0.0` (SPEC-ATTEST.md): a verifier (keyguard, committee member) sends a
 * fresh nonce with the run it asks about; the executor answers with a TPM quote bound to
 * them, the PCR values it covers, the PCR 23 event log and its last clean-up report. The
 * bytes are opaque here: `@digicap/attestation` parses and verifies them.
 */
import {
  checkFields,
  decodeEnvelope,
  readBool,
  readBytes,
  WIRE_VERSION,
  type WireMap,
} from './cbor.ts'
import { WireFormatError } from './errors.ts'
import { MAX_CONTROL_FRAME } from './frame.ts'
import { encodeChecked, ID_LENGTH } from './messages.ts'
import type { WireProtocol } from './protocols.ts'

/** Verifier → executor quote challenge, executor → verifier evidence. */
export const ATTEST_PROTOCOL = '/digicap/attest/1.0.0'
/** PCRs a quote of this protocol covers, in the order of `pcrValues`. */
export const ATTEST_PCRS: readonly number[] = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 23])
/** Largest TPMS_ATTEST / TPMT_SIGNATURE accepted on the wire (a TPM's are a few hundred bytes). */
export const MAX_ATTEST_BYTES = 1024
/** Largest DGEL event log: header (7) + 64 events of 33 bytes. */
export const MAX_EVENT_LOG_BYTES = 7 + 64 * 33
/** Largest attestation record (DGAR: header, two TPM2B_PUBLIC ≤ 1024, 8 PCR values). */
export const MAX_RECORD_BYTES = 5 + 2 * (2 + 1024) + 8 * 32

export interface AttestChallenge {
  /** 32 fresh random bytes from the verifier. */
  nonce: Uint8Array
  /** The grant the quote is about (32 bytes). */
  grantId: Uint8Array
  /** The run's ephemeral X25519 public key (32 bytes), the key data keys are sealed to. */
  ephemeralKey: Uint8Array
}

/** The executor's clean-up statement after a run (its PCR 23 reset is in the quote). */
export interface AttestCleanup {
  grantId: Uint8Array
  workspaceRemoved: boolean
  keyBuffersWiped: boolean
}

export interface AttestEvidence {
  /** TPMS_ATTEST as signed by the AK. */
  attest: Uint8Array
  /** TPMT_SIGNATURE. */
  signature: Uint8Array
  /** The sha256 values of {@link ATTEST_PCRS}, 32 bytes each, concatenated (288 bytes). */
  pcrValues: Uint8Array
  /** The PCR 23 event log, DGEL version 1 (attestation SPEC §6). */
  eventLog: Uint8Array
  /** The last finished run's clean-up report; absent before the first run. */
  cleanup?: AttestCleanup
  /**
   * The executor's attestation record (DGAR, attestation SPEC §9), so a verifier that only
   * knows the registered hash can check it; opaque here.
   */
  record?: Uint8Array
}

const CHALLENGE = 'attest-challenge'
const EVIDENCE = 'attest-evidence'
const CLEANUP_FIELDS = ['cleanupGrantId', 'workspaceRemoved', 'keyBuffersWiped'] as const

function expect(type: string, expected: string): void {
  if (type !== expected) {
    throw new WireFormatError(`Expected a ${expected} message`, {
      details: { field: 't', reason: 'unexpected-type', expected, got: type.slice(0, 32) },
    })
  }
}

export function decodeAttestChallenge(body: Uint8Array): AttestChallenge {
  const { type, map } = decodeEnvelope(body)
  expect(type, CHALLENGE)
  checkFields(map, type, ['nonce', 'grantId', 'ephemeralKey'])
  return {
    nonce: readBytes(map, type, 'nonce', ID_LENGTH),
    grantId: readBytes(map, type, 'grantId', ID_LENGTH),
    ephemeralKey: readBytes(map, type, 'ephemeralKey', ID_LENGTH),
  }
}

/** @throws {InvalidArgumentError} if a field has the wrong type or length. */
export function encodeAttestChallenge(message: AttestChallenge): Uint8Array {
  return encodeChecked(
    CHALLENGE,
    () => ({
      v: WIRE_VERSION,
      t: CHALLENGE,
      nonce: message.nonce,
      grantId: message.grantId,
      ephemeralKey: message.ephemeralKey,
    }),
    decodeAttestChallenge,
  )
}

export function decodeAttestEvidence(body: Uint8Array): AttestEvidence {
  const { type, map } = decodeEnvelope(body)
  expect(type, EVIDENCE)
  checkFields(
    map,
    type,
    ['attest', 'signature', 'pcrValues', 'eventLog'],
    [...CLEANUP_FIELDS, 'record'],
  )
  const present = CLEANUP_FIELDS.filter((f) => Object.hasOwn(map, f))
  if (present.length !== 0 && present.length !== CLEANUP_FIELDS.length) {
    const missing = CLEANUP_FIELDS.find((f) => !Object.hasOwn(map, f))
    throw new WireFormatError(`Missing field in ${type}`, {
      details: { type, field: missing, reason: 'missing' },
    })
  }
  const evidence: AttestEvidence = {
    attest: readBytes(map, type, 'attest', { min: 1, max: MAX_ATTEST_BYTES }),
    signature: readBytes(map, type, 'signature', { min: 1, max: MAX_ATTEST_BYTES }),
    pcrValues: readBytes(map, type, 'pcrValues', 32 * ATTEST_PCRS.length),
    eventLog: readBytes(map, type, 'eventLog', { min: 7, max: MAX_EVENT_LOG_BYTES }),
    ...(Object.hasOwn(map, 'record')
      ? { record: readBytes(map, type, 'record', { min: 1, max: MAX_RECORD_BYTES }) }
      : {}),
  }
  if (present.length === 0) return evidence
  return {
    ...evidence,
    cleanup: {
      grantId: readBytes(map, type, 'cleanupGrantId', ID_LENGTH),
      workspaceRemoved: readBool(map, type, 'workspaceRemoved'),
      keyBuffersWiped: readBool(map, type, 'keyBuffersWiped'),
    },
  }
}

/** @throws {InvalidArgumentError} if a field has the wrong type or length. */
export function encodeAttestEvidence(message: AttestEvidence): Uint8Array {
  return encodeChecked(
    EVIDENCE,
    (): WireMap => ({
      v: WIRE_VERSION,
      t: EVIDENCE,
      attest: message.attest,
      signature: message.signature,
      pcrValues: message.pcrValues,
      eventLog: message.eventLog,
      ...(message.record === undefined ? {} : { record: message.record }),
      ...(message.cleanup === undefined
        ? {}
        : {
            cleanupGrantId: message.cleanup.grantId,
            workspaceRemoved: message.cleanup.workspaceRemoved,
            keyBuffersWiped: message.cleanup.keyBuffersWiped,
          }),
    }),
    decodeAttestEvidence,
  )
}

/** `/digicap/attest/1.0.0`: {@link AttestChallenge} → {@link AttestEvidence}. */
export const attestProtocol: WireProtocol<AttestChallenge, AttestEvidence> = {
  id: ATTEST_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeAttestChallenge,
  decodeRequest: decodeAttestChallenge,
  encodeResponse: encodeAttestEvidence,
  decodeResponse: decodeAttestEvidence,
}
