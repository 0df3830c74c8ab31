/**
 * The quote verifier: pure TypeScript over node:crypto, no TPM. Runs the checks of SPEC.md §2
 * in order and stops at the first failure, with that check's own error code.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import { equalBytes } from '../bytes.ts'
import { QuoteVerificationError } from '../errors.ts'
import { parseQuoteAttest, type QuoteAttest } from '../tpm/attest.ts'
import { parseSignature } from '../tpm/signature.ts'
import {
  type AttestationKey,
  type AttestationKeyRecord,
  importAttestationKey,
} from './attestation-key.ts'
import { checkQuoteSequence, type QuoteClock } from './clock.ts'
import { checkPcrDigest, checkPcrSelection, DEFAULT_QUOTE_PCRS, normalizePcrList } from './pcrs.ts'
import { checkSignatureScheme, verifyQuoteSignature } from './signature-check.ts'

/** What the node sent. */
export interface QuoteEvidence {
  /** TPMS_ATTEST as the TPM signed it (`tpm2_quote -m`). */
  attest: Uint8Array
  /** TPMT_SIGNATURE (`tpm2_quote -s`, default `tss` format). */
  signature: Uint8Array
  /** The values of the quoted sha256 PCRs, by index. */
  pcrValues: ReadonlyMap<number, Uint8Array>
}

/** What the verifier knows independently of the node's answer. */
export interface QuoteExpectation {
  /** The node's registered EK and AK, or a record already imported with {@link importAttestationKey}. */
  attestationKey: AttestationKeyRecord | AttestationKey
  /** The expected qualifying data, normally {@link quoteBinding}(nonce, grant id, ephemeral key). */
  qualifyingData: Uint8Array
  /** PCRs the quote must select in the sha256 bank. Default {@link DEFAULT_QUOTE_PCRS}. */
  pcrs?: readonly number[]
  /** The node's previous accepted quote, for the clock/reboot check. Omit for a first quote. */
  previous?: QuoteClock
}

export interface VerifiedQuote {
  readonly attest: QuoteAttest
  readonly attestationKey: AttestationKey
}

/**
 * Verifies a TPM quote against a registered AK and an expected binding.
 *
 * @throws {TpmFormatError} a structure is malformed (the field is named).
 * @throws {QuoteVerificationError} a check failed; `code` says which.
 * @throws {InvalidArgumentError} the expectation itself is malformed.
 */
export function verifyQuote(evidence: QuoteEvidence, expected: QuoteExpectation): VerifiedQuote {
  const pcrs = normalizePcrList(expected.pcrs ?? DEFAULT_QUOTE_PCRS)
  const qd = expected.qualifyingData
  if (!(qd instanceof Uint8Array) || qd.length === 0 || qd.length > 64) {
    throw new InvalidArgumentError('qualifyingData must be 1–64 bytes', {
      details: { name: 'qualifyingData' },
    })
  }
  const ak =
    'qualifiedName' in expected.attestationKey
      ? expected.attestationKey
      : importAttestationKey(expected.attestationKey)

  // 1. magic and type (inside the parser, before anything else is trusted)
  const attest = parseQuoteAttest(evidence.attest)
  // 2. signature scheme and hash
  const signature = parseSignature(evidence.signature)
  checkSignatureScheme(signature, ak)
  // 3. the signer the TPM names is the registered AK, under the registered EK
  if (!equalBytes(attest.qualifiedSigner, ak.qualifiedName)) {
    throw new QuoteVerificationError(
      'QUOTE_SIGNER',
      'The quote was signed by another key than the registered AK under the registered EK',
      {
        details: { field: 'qualifiedSigner' },
      },
    )
  }
  // 4. signature by the registered AK
  verifyQuoteSignature(evidence.attest, signature, ak)
  // 5. qualifying data is the run binding
  if (!equalBytes(attest.extraData, qd)) {
    throw new QuoteVerificationError(
      'QUOTE_NONCE',
      'The quote is bound to another nonce, grant or key',
      {
        details: { field: 'extraData' },
      },
    )
  }
  // 6. PCR selection, 7. PCR digest
  checkPcrSelection(attest.pcrSelect, pcrs)
  checkPcrDigest(attest.pcrDigest, evidence.pcrValues, pcrs)
  // 8. clock and boot counters against the node's previous quote
  if (expected.previous !== undefined) checkQuoteSequence(expected.previous, attest.clockInfo)
  return { attest, attestationKey: ak }
}
