/**
 * PCR checks: the quote selects exactly the sha256 bank over the expected PCRs, and its
 * digest is SHA-256 of the reported values concatenated in ascending PCR order (the order a
 * TPM hashes them in).
 */
import { hash } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { equalBytes } from '../bytes.ts'
import { QuoteVerificationError } from '../errors.ts'
import type { PcrSelection } from '../tpm/attest.ts'
import { TPM_ALG } from '../tpm/constants.ts'

/** The PCRs an executor quote covers: boot PCRs 0–7 and the run PCR 23. */
export const DEFAULT_QUOTE_PCRS: readonly number[] = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 23])

/** Sorted, de-duplicated copy of a PCR list; throws on an index outside 0–23. */
export function normalizePcrList(pcrs: readonly number[]): number[] {
  // The default list is checked once (every verification of a quote uses it).
  if (pcrs === DEFAULT_QUOTE_PCRS) return [...DEFAULT_QUOTE_PCRS]
  const sorted = [...new Set(pcrs)].sort((a, b) => a - b)
  if (
    sorted.length === 0 ||
    sorted.length !== pcrs.length ||
    sorted.some((i) => !Number.isInteger(i) || i < 0 || i > 23)
  ) {
    throw new InvalidArgumentError('pcrs must be distinct PCR indices 0–23', { details: { pcrs } })
  }
  return sorted
}

/** @throws {QuoteVerificationError} `QUOTE_PCR_SELECTION`. */
export function checkPcrSelection(
  selection: readonly PcrSelection[],
  expected: readonly number[],
): void {
  const bank = selection[0]
  const exact =
    selection.length === 1 &&
    bank !== undefined &&
    bank.hashAlg === TPM_ALG.SHA256 &&
    bank.pcrs.length === expected.length &&
    bank.pcrs.every((p, i) => p === expected[i])
  if (!exact) {
    throw new QuoteVerificationError(
      'QUOTE_PCR_SELECTION',
      'The quote does not select exactly the expected sha256 PCRs',
      {
        details: {
          field: 'attested.quote.pcrSelect',
          selected: selection.map((s) => ({ hashAlg: s.hashAlg, pcrs: s.pcrs })),
          expected,
        },
      },
    )
  }
}

/** SHA-256 over the values of `pcrs` (ascending), as a TPM computes a quote's pcrDigest. */
export function pcrCompositeDigest(
  values: ReadonlyMap<number, Uint8Array>,
  pcrs: readonly number[],
): Uint8Array {
  // One buffer and a one-shot hash: this runs for every quote verified (bench/verify.ts).
  let size = 0
  for (const i of pcrs) {
    const v = values.get(i)
    if (v === undefined)
      throw new InvalidArgumentError('A PCR value is missing', { details: { pcr: i } })
    size += v.length
  }
  const all = new Uint8Array(size)
  let at = 0
  for (const i of pcrs) {
    const v = values.get(i) as Uint8Array
    all.set(v, at)
    at += v.length
  }
  return new Uint8Array(hash('sha256', all, 'buffer'))
}

/** @throws {QuoteVerificationError} `QUOTE_PCR_DIGEST`. */
export function checkPcrDigest(
  quoted: Uint8Array,
  values: ReadonlyMap<number, Uint8Array>,
  expected: readonly number[],
): void {
  const fail = (shortMessage: string, details: Record<string, unknown>): never => {
    throw new QuoteVerificationError('QUOTE_PCR_DIGEST', shortMessage, { details })
  }
  const keys = [...values.keys()].sort((a, b) => a - b)
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    fail('The reported PCR values are not exactly the quoted PCRs', {
      field: 'pcrValues',
      reported: keys,
      expected,
    })
  }
  for (const [pcr, v] of values) {
    if (!(v instanceof Uint8Array) || v.length !== 32)
      fail('A reported PCR value is not 32 bytes', { field: 'pcrValues', pcr })
  }
  if (!equalBytes(quoted, pcrCompositeDigest(values, expected))) {
    fail('The quoted PCR digest is not the hash of the reported PCR values', {
      field: 'attested.quote.pcrDigest',
    })
  }
}
