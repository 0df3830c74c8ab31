/**
 * Every committed vector (made from a real swtpm by scripts/generate-vectors.ts) gets exactly
 * its expected outcome: `ok`, or the one typed error code the file names.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { verifyQuote } from '../src/index.ts'
import { parseVector, type QuoteVector, VECTOR_DIR } from './helpers/vector-file.ts'

const vectors = readdirSync(VECTOR_DIR)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => [f, parseVector(readFileSync(join(VECTOR_DIR, f), 'utf8'))] as const)

/** `ok`, or the code of the typed error the verifier threw (anything else fails the test). */
export function outcome(v: QuoteVector): string {
  try {
    verifyQuote(
      { attest: v.attest, signature: v.signature, pcrValues: v.pcrValues },
      {
        attestationKey: { ekPublic: v.ekPublic, akPublic: v.akPublic },
        qualifyingData: v.qualifyingData,
        pcrs: v.pcrs,
        ...(v.previous === undefined ? {} : { previous: v.previous }),
      },
    )
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
}

describe('quote vectors from a real swtpm', () => {
  it('are at least 30, with valid RSA, RSAPSS and ECC (high and low s) quotes among them', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(30)
    const ok = vectors.filter(([, v]) => v.expect === 'ok').map(([f]) => f)
    expect(ok).toEqual(
      expect.arrayContaining([
        'rsa-valid.txt',
        'rsapss-valid.txt',
        'ecc-valid-low-s.txt',
        'ecc-valid-high-s.txt',
      ]),
    )
  })

  it('cover every check of the verifier', () => {
    const codes = new Set(vectors.map(([, v]) => v.expect))
    for (const code of [
      'TPM_FORMAT',
      'QUOTE_MAGIC',
      'QUOTE_TYPE',
      'QUOTE_SIGNATURE_SCHEME',
      'QUOTE_AK',
      'QUOTE_SIGNER',
      'QUOTE_SIGNATURE',
      'QUOTE_NONCE',
      'QUOTE_PCR_SELECTION',
      'QUOTE_PCR_DIGEST',
      'QUOTE_CLOCK',
      'QUOTE_REBOOT',
      'QUOTE_RESTART',
    ]) {
      expect(codes, code).toContain(code)
    }
  })

  it.each(vectors)('%s gets its expected outcome', (_file, v) => {
    expect(outcome(v)).toBe(v.expect)
  })
})
