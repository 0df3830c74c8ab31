/**
 * Typed errors of the attestation verifier. Every error this package throws across its
 * boundary is one of these (or an `InvalidArgumentError` from `@digicap/capsule-core` for a
 * caller's own bad argument). Messages carry field names, offsets and lengths; quote and key
 * bytes are never copied into them.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/**
 * Bytes are not a well-formed TPM 2.0 structure: truncated, trailing bytes, a size field out
 * of range, or an algorithm/type value this verifier does not know. `details.structure` and
 * `details.field` name the structure and field at fault, `details.offset` where it starts.
 */
export class TpmFormatError extends DigicapError {
  override name = 'TpmFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_FORMAT', shortMessage, options)
  }
}

/**
 * Stable codes of a refused quote, one per check, in the order the verifier runs them
 * (SPEC.md §2). A code never changes meaning once published.
 */
export type QuoteErrorCode =
  /** TPMS_ATTEST.magic is not TPM_GENERATED_VALUE: the TPM did not make this structure. */
  | 'QUOTE_MAGIC'
  /** TPMS_ATTEST.type is not TPM_ST_ATTEST_QUOTE (a certify, time or other attestation). */
  | 'QUOTE_TYPE'
  /** The signature's scheme or hash is not allowed (sha256 only; scheme must fit the AK). */
  | 'QUOTE_SIGNATURE_SCHEME'
  /** The AK public is not a restricted signing key of a supported type. */
  | 'QUOTE_AK'
  /** TPMS_ATTEST.qualifiedSigner is not the qualified name of the registered AK under the registered EK. */
  | 'QUOTE_SIGNER'
  /** The signature does not verify under the registered AK. */
  | 'QUOTE_SIGNATURE'
  /** TPMS_ATTEST.extraData is not the expected binding H(nonce ‖ grant id ‖ ephemeral key). */
  | 'QUOTE_NONCE'
  /** The PCR selection is not exactly the sha256 bank over the expected PCRs. */
  | 'QUOTE_PCR_SELECTION'
  /** The quoted PCR digest is not the hash of the reported PCR values. */
  | 'QUOTE_PCR_DIGEST'
  /** clock, resetCount or restartCount went backwards against the node's previous quote. */
  | 'QUOTE_CLOCK'
  /** resetCount grew: the TPM was reset (power loss, reboot) since the previous quote. */
  | 'QUOTE_REBOOT'
  /** restartCount grew: the TPM was restarted or resumed since the previous quote. */
  | 'QUOTE_RESTART'
  /** Replaying the PCR 23 event log does not give the quoted PCR 23 value. */
  | 'QUOTE_EVENT_LOG'
  /** A boot PCR (0–7) differs from the node's registered reference value. */
  | 'QUOTE_BOOT_PCRS'
  /** PCR 23 is not what the phase requires: reset before/after the run, the run measurement during it. */
  | 'QUOTE_RUN_PCR'
  /** After a run: no clean-up report, a report for another grant, or one that admits a leftover workspace or key buffer. */
  | 'QUOTE_CLEANUP'

/**
 * A quote failed one of the verifier's checks. `code` says which; `details.field` names the
 * TPMS_ATTEST / TPMT_SIGNATURE field at fault when there is one.
 */
export class QuoteVerificationError extends DigicapError {
  override name = 'QuoteVerificationError'
  declare readonly code: QuoteErrorCode
  constructor(code: QuoteErrorCode, shortMessage: string, options: DigicapErrorOptions = {}) {
    super(code, shortMessage, {
      hint: "Do not trust this node's evidence; ask for a fresh quote, and re-register the node if it keeps failing.",
      ...options,
    })
  }
}

/**
 * MakeCredential cannot wrap a credential to this EK: not an RSA or ECC restricted decryption
 * key with an AES-CFB symmetric definition, or a secret of the wrong size.
 * `details.field` names the EK field or argument at fault.
 */
export class CredentialError extends DigicapError {
  override name = 'CredentialError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CREDENTIAL', shortMessage, options)
  }
}

/**
 * Bytes are not a well-formed PCR 23 event log (SPEC.md §6): wrong magic or version,
 * truncated, trailing bytes, an unknown event kind, too many events. `details.field` names
 * the field at fault.
 */
export class EventLogFormatError extends DigicapError {
  override name = 'EventLogFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('EVENT_LOG_FORMAT', shortMessage, options)
  }
}

/**
 * A key release that needs attestation is refused (SPEC.md §10). `details.reason`:
 * `unregistered` (no attestation key hash on chain), `record-mismatch` (the record does not
 * hash to the registered value), `evidence` (the before-quote failed; `details.check` is the
 * `QUOTE_*` code, the error is the `cause`), `unreachable` (no evidence from the executor).
 */
export class AttestationRefusedError extends DigicapError {
  override name = 'AttestationRefusedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ATTESTATION_REFUSED', shortMessage, {
      hint: 'Release nothing to this key; the executor must re-register its TPM record or answer with a valid before-quote.',
      ...options,
    })
  }
}

/**
 * A record's EK certificate does not make its EK a TPM's (SPEC.md §9, ADR 0069), or the trusted
 * roots cannot be read: `details.reason` `missing`, `malformed`, `unreadable` (the roots file), `untrusted` (issued by no certificate of the trusted
 * EK roots), `expired` (outside its validity, or its issuer's) or `key-mismatch` (it certifies
 * another key than the record's EK).
 */
export class EkCertificateError extends DigicapError {
  override name = 'EkCertificateError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('EK_CERTIFICATE', shortMessage, {
      hint: 'Register a record made on a TPM whose maker’s CA is in the verifier’s EK roots (its EK certificate is read from the TPM’s NV).',
      ...options,
    })
  }
}

/** Bytes are not a well-formed attestation record (SPEC.md §9); `details.field`. */
export class AttestationRecordError extends DigicapError {
  override name = 'AttestationRecordError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ATTESTATION_RECORD', shortMessage, options)
  }
}

/**
 * The agent refuses to measure a run: PCR 23 is not at its reset value (a previous run did not
 * finish its clean-up, or something else extended it). Same code as the executor's refusal.
 * Recover with `resetRunPcr()` once the cause is known.
 */
export class RunPcrNotResetError extends DigicapError {
  override name = 'RunPcrNotResetError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RUN_PCR_NOT_RESET', shortMessage, {
      hint: 'Find why the last run did not clean up, then call resetRunPcr() (or tpm2_pcrreset 23).',
      ...options,
    })
  }
}
