/**
 * TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2 §10.12), parsed strictly: the magic
 * and the type are checked first (they are the verifier's first check), then every field is
 * read with bounds checks, and trailing bytes are refused.
 */
import { QuoteVerificationError } from '../errors.ts'
import {
  MAX_DIGEST,
  MAX_NAME,
  MAX_PCR_BANKS,
  MAX_PCR_SELECT,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
} from './constants.ts'
import { TpmReader } from './reader.ts'

/** One bank of a TPML_PCR_SELECTION. */
export interface PcrSelection {
  /** TPM_ALG_ID of the bank. */
  readonly hashAlg: number
  /** Selected PCR indices, ascending. */
  readonly pcrs: readonly number[]
}

/** TPMS_CLOCK_INFO (with firmwareVersion, which sits next to it in TPMS_ATTEST). */
export interface QuoteClockInfo {
  readonly clock: bigint
  readonly resetCount: number
  readonly restartCount: number
  readonly safe: boolean
}

/** A parsed quote: TPMS_ATTEST with TPMS_QUOTE_INFO. */
export interface QuoteAttest {
  readonly magic: number
  readonly type: number
  /** TPM2B_NAME: the name of the key that signed (nameAlg ‖ digest). */
  readonly qualifiedSigner: Uint8Array
  /** TPM2B_DATA: the caller's qualifying data, here the run binding. */
  readonly extraData: Uint8Array
  readonly clockInfo: QuoteClockInfo
  readonly firmwareVersion: bigint
  readonly pcrSelect: readonly PcrSelection[]
  /** TPM2B_DIGEST over the selected PCR values. */
  readonly pcrDigest: Uint8Array
}

/** Parses a TPML_PCR_SELECTION from `r`. */
export function readPcrSelection(r: TpmReader, field: string): PcrSelection[] {
  const count = r.u32(`${field}.count`)
  if (count > MAX_PCR_BANKS) r.fail(`${field}.count`, 'Too many PCR banks', { count })
  const banks: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16(`${field}[${i}].hash`)
    const size = r.u8(`${field}[${i}].sizeofSelect`)
    if (size > MAX_PCR_SELECT)
      r.fail(`${field}[${i}].sizeofSelect`, 'PCR bitmap too large', { size })
    const bitmap = r.bytes(`${field}[${i}].pcrSelect`, size)
    const pcrs: number[] = []
    bitmap.forEach((byte, j) => {
      for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) pcrs.push(j * 8 + bit)
    })
    banks.push({ hashAlg, pcrs })
  }
  return banks
}

/**
 * Parses a quote's TPMS_ATTEST.
 *
 * @throws {QuoteVerificationError} `QUOTE_MAGIC` or `QUOTE_TYPE` (field `magic` / `type`).
 * @throws {TpmFormatError} truncated, trailing bytes, or a size out of range.
 */
export function parseQuoteAttest(bytes: Uint8Array): QuoteAttest {
  const r: TpmReader = new TpmReader(bytes, 'TPMS_ATTEST')
  const magic = r.u32('magic')
  if (magic !== TPM_GENERATED_VALUE) {
    throw new QuoteVerificationError('QUOTE_MAGIC', 'Not a TPM-generated attestation', {
      details: { field: 'magic', magic },
    })
  }
  const type = r.u16('type')
  if (type !== TPM_ST_ATTEST_QUOTE) {
    throw new QuoteVerificationError('QUOTE_TYPE', 'The attestation is not a quote', {
      details: { field: 'type', type },
    })
  }
  const qualifiedSigner = r.sized('qualifiedSigner', MAX_NAME)
  const extraData = r.sized('extraData', MAX_DIGEST)
  const clock = r.u64('clockInfo.clock')
  const resetCount = r.u32('clockInfo.resetCount')
  const restartCount = r.u32('clockInfo.restartCount')
  const safeByte = r.u8('clockInfo.safe')
  if (safeByte > 1)
    r.fail('clockInfo.safe', 'clockInfo.safe is not a TPMI_YES_NO', { safe: safeByte })
  const firmwareVersion = r.u64('firmwareVersion')
  const pcrSelect = readPcrSelection(r, 'attested.quote.pcrSelect')
  const pcrDigest = r.sized('attested.quote.pcrDigest', MAX_DIGEST)
  r.end()
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion,
    pcrSelect,
    pcrDigest,
  }
}
