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
/**
 * Largest attestation record (DGAR: header, two TPM2B_PUBLIC ≤ 1024, 8 PCR values, and in
 * version 2 an EK certificate ≤ 4096).
 */
export const MAX_RECORD_BYTES = 5 + 2 * (2 + 1024) + 8 * 32 + (2 + 4096)

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

/** Largest TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET of an activation (RSA-4096 EK: 514). */
export const MAX_CREDENTIAL_BYTES = 1024
/** Largest credential secret (TPM2B_DIGEST of sha512). */
export const MAX_CREDENTIAL_SECRET = 64

/**
 * Verifier → executor credential activation (SPEC-ATTEST §3): MakeCredential's output for the
 * registered EK and the AK's name. Only the TPM holding that EK, with that AK loaded, recovers
 * the secret (TPM2_ActivateCredential).
 */
export interface AttestActivate {
  /** TPM2B_ID_OBJECT, with its size. */
  idObject: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET, with its size. */
  encryptedSecret: Uint8Array
}

/** Executor → verifier: the secret TPM2_ActivateCredential recovered. */
export interface AttestActivated {
  secret: Uint8Array
}

const ACTIVATE = 'attest-activate'
const ACTIVATED = 'attest-activated'

export function decodeAttestActivate(body: Uint8Array): AttestActivate {
  const { type, map } = decodeEnvelope(body)
  expect(type, ACTIVATE)
  checkFields(map, type, ['idObject', 'encryptedSecret'])
  return {
    idObject: readBytes(map, type, 'idObject', { min: 1, max: MAX_CREDENTIAL_BYTES }),
    encryptedSecret: readBytes(map, type, 'encryptedSecret', {
      min: 1,
      max: MAX_CREDENTIAL_BYTES,
    }),
  }
}

/** @throws {InvalidArgumentError} if a field has the wrong type or length. */
export function encodeAttestActivate(message: AttestActivate): Uint8Array {
  return encodeChecked(
    ACTIVATE,
    () => ({
      v: WIRE_VERSION,
      t: ACTIVATE,
      idObject: message.idObject,
      encryptedSecret: message.encryptedSecret,
    }),
    decodeAttestActivate,
  )
}

export function decodeAttestActivated(body: Uint8Array): AttestActivated {
  const { type, map } = decodeEnvelope(body)
  expect(type, ACTIVATED)
  checkFields(map, type, ['secret'])
  return { secret: readBytes(map, type, 'secret', { min: 1, max: MAX_CREDENTIAL_SECRET }) }
}

/** @throws {InvalidArgumentError} if a field has the wrong type or length. */
export function encodeAttestActivated(message: AttestActivated): Uint8Array {
  return encodeChecked(
    ACTIVATED,
    () => ({ v: WIRE_VERSION, t: ACTIVATED, secret: message.secret }),
    decodeAttestActivated,
  )
}

/** `/digicap/attest/1.0.0`, a quote challenge: {@link AttestChallenge} → {@link AttestEvidence}. */
export const attestProtocol: WireProtocol<AttestChallenge, AttestEvidence> = {
  id: ATTEST_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeAttestChallenge,
  decodeRequest: decodeAttestChallenge,
  encodeResponse: encodeAttestEvidence,
  decodeResponse: decodeAttestEvidence,
}

/**
 * `/digicap/attest/1.0.0`, a credential activation: {@link AttestActivate} →
 * {@link AttestActivated}. Same protocol id as {@link attestProtocol}: for `request` only; an
 * executor serves both with {@link attestServeProtocol}.
 */
export const attestActivateProtocol: WireProtocol<AttestActivate, AttestActivated> = {
  id: ATTEST_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeAttestActivate,
  decodeRequest: decodeAttestActivate,
  encodeResponse: encodeAttestActivated,
  decodeResponse: decodeAttestActivated,
}

/** Any request of `/digicap/attest/1.0.0`, tagged by its message type. */
export type AttestRequest =
  | ({ t: 'attest-challenge' } & AttestChallenge)
  | ({ t: 'attest-activate' } & AttestActivate)
/** Any response of `/digicap/attest/1.0.0`, tagged by its message type. */
export type AttestResponse =
  | ({ t: 'attest-evidence' } & AttestEvidence)
  | ({ t: 'attest-activated' } & AttestActivated)

function typeOf(body: Uint8Array): string {
  return decodeEnvelope(body).type
}

/**
 * `/digicap/attest/1.0.0`, both exchanges, for the executor's `handle`: the request's `t`
 * picks the codec; any other type is `WIRE_FORMAT`.
 */
export const attestServeProtocol: WireProtocol<AttestRequest, AttestResponse> = {
  id: ATTEST_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: (m) =>
    m.t === ACTIVATE ? encodeAttestActivate(m) : encodeAttestChallenge(m as AttestChallenge),
  decodeRequest: (body) =>
    typeOf(body) === ACTIVATE
      ? { t: ACTIVATE, ...decodeAttestActivate(body) }
      : { t: CHALLENGE, ...decodeAttestChallenge(body) },
  encodeResponse: (m) =>
    m.t === ACTIVATED ? encodeAttestActivated(m) : encodeAttestEvidence(m as AttestEvidence),
  decodeResponse: (body) =>
    typeOf(body) === ACTIVATED
      ? { t: ACTIVATED, ...decodeAttestActivated(body) }
      : { t: EVIDENCE, ...decodeAttestEvidence(body) },
}
