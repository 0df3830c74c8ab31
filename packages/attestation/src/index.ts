/**
 * @packageDocumentation
 *
 * `@digicap/attestation` — the verifier side of an executor's TPM evidence: strict parsers
 * for TPMS_ATTEST, TPMT_SIGNATURE and TPM2B_PUBLIC, a quote verifier in pure TypeScript
 * (node:crypto only; no TPM, no native code).
 *
 * Guarantees:
 * - Every malformed structure (truncated, trailing bytes, a size out of range, an unknown
 *   type, algorithm or curve) is a {@link TpmFormatError} whose `details.field` names the
 *   field; nothing else is thrown for bad bytes.
 * - {@link verifyQuote} runs its checks in a fixed order (SPEC.md §2) and refuses with the
 *   first failing check's {@link QuoteVerificationError} code: magic, type, signature scheme
 *   (sha256 only, no downgrade), signer name, signature, qualifying data, PCR selection
 *   (exactly sha256 over the expected PCRs), PCR digest, clock and boot counters.
 * - Stricter than `tpm2_checkquote` (SPEC.md §3): bytes after the signature, a sha1 bank, a
 *   scheme other than the AK's, a non-restricted AK and an AK under another EK are refused.
 *   ECDSA signatures with a high s and RSAPSS signatures (genuine TPM output) are accepted.
 * - {@link makeCredential} wraps a secret to an RSA EK for one AK name exactly as
 *   TPM2_MakeCredential does (`tpm2_activatecredential` recovers it on the TPM holding that
 *   EK and that AK, and on no other).
 * - {@link checkEventLog} accepts a PCR 23 event log only if it replays to the quoted PCR 23;
 *   {@link verifyPhase} adds the before/during/after rules (boot PCRs as registered, PCR 23
 *   reset or equal to this run's measurement, no reboot since the before-quote).
 * - Nothing runs at import time; no key material appears in error messages.
 *
 * @example
 * ```ts
 * import { quoteBinding, verifyQuote } from '@digicap/attestation'
 *
 * const qualifyingData = quoteBinding({ nonce, grantId, ephemeralPublicKey })
 * const { attest } = verifyQuote(
 *   { attest: quoteMsg, signature: quoteSig, pcrValues },          // from the executor
 *   { attestationKey: { ekPublic, akPublic }, qualifyingData, previous }, // the node's registration
 * )
 * previous = attest.clockInfo
 * ```
 */

export type { Credential, MakeCredentialParameters } from './credential/make-credential.ts'
export { encodeCredentialFile, makeCredential } from './credential/make-credential.ts'
export type { QuoteErrorCode } from './errors.ts'
export {
  AttestationRecordError,
  AttestationRefusedError,
  CredentialError,
  EkCertificateError,
  EventLogFormatError,
  QuoteVerificationError,
  RunPcrNotResetError,
  TpmFormatError,
} from './errors.ts'
export type { EventKind, RunEvent } from './event-log/format.ts'
export {
  decodeEventLog,
  EVENT_KINDS,
  EVENT_LOG_VERSION,
  encodeEventLog,
  MAX_EVENTS,
} from './event-log/format.ts'
export { checkEventLog, PCR23_RESET_VALUE, replayEventLog } from './event-log/replay.ts'
export type {
  CleanupReport,
  GrantMeasurement,
  Phase,
  PhaseExpectation,
  RunMeasurementParameters,
} from './phases/phase.ts'
export {
  checkCleanup,
  expectedRunMeasurement,
  openRunMeasurement,
  runEvents,
  verifyPhase,
} from './phases/phase.ts'
export type { ActivateOptions, ActivationCache } from './protocol/activate.ts'
export {
  activateAttestationKey,
  checkEkCertificate,
  createActivationCache,
} from './protocol/activate.ts'
export type {
  AttestationChallenge,
  AttestationResponse,
} from './protocol/challenge.ts'
export {
  attestationResponse,
  requestAttestation,
  verifyAttestation,
} from './protocol/challenge.ts'
export type { ReceivedEvidence } from './protocol/evidence.ts'
export { fromWireEvidence, toWireEvidence } from './protocol/evidence.ts'
export type { AttestationRecord } from './registration/record.ts'
export {
  ATTESTATION_RECORD_VERSION,
  ATTESTATION_RECORD_VERSION_EK_CERTIFICATE,
  attestationRecordHash,
  decodeAttestationRecord,
  encodeAttestationRecord,
} from './registration/record.ts'
export type { AttestedReleaseParameters } from './release/require-attested.ts'
export { requireAttestedRelease } from './release/require-attested.ts'
export type { PcrSelection, QuoteAttest, QuoteClockInfo } from './tpm/attest.ts'
export { parseQuoteAttest } from './tpm/attest.ts'
export { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from './tpm/constants.ts'
export type { EccPublic, RsaPublic, TpmPublic, TpmScheme } from './tpm/public.ts'
export { parsePublic, parsePublicArea } from './tpm/public.ts'
export type { TpmSignature } from './tpm/signature.ts'
export { parseSignature } from './tpm/signature.ts'
export type { AttestationKey, AttestationKeyRecord } from './verifier/attestation-key.ts'
export { importAttestationKey } from './verifier/attestation-key.ts'
export type { QuoteBindingParameters } from './verifier/binding.ts'
export {
  BINDING_GRANT_ID_LENGTH,
  BINDING_MAX_KEY_LENGTH,
  BINDING_NONCE_LENGTH,
  quoteBinding,
} from './verifier/binding.ts'
export type { QuoteClock } from './verifier/clock.ts'
export { checkQuoteRollback, checkQuoteSequence } from './verifier/clock.ts'
export type { EkRoots } from './verifier/ek-certificate.ts'
export {
  parseEkRoots,
  readEkRoots,
  TCG_KP_EK_CERTIFICATE,
  verifyEkCertificate,
} from './verifier/ek-certificate.ts'
export { DEFAULT_QUOTE_PCRS, pcrCompositeDigest } from './verifier/pcrs.ts'
export type { QuoteEvidence, QuoteExpectation, VerifiedQuote } from './verifier/verify-quote.ts'
export { verifyQuote } from './verifier/verify-quote.ts'
