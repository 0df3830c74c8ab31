/**
 * Fresh quotes from a real swtpm, made now by the vector generator's own code: every genuine
 * one (RSASSA, RSAPSS, ECDSA with high and low s, after a restart, under a second EK) is
 * accepted, and every one tampered by real TPM behaviour or byte edits is refused with the
 * expected code. This keeps the committed vectors honest: they are what swtpm makes today.
 */
import { DigicapError } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeVectors } from '../scripts/generate-vectors.ts'
import { verifyQuote } from '../src/index.ts'
import { startQuoter, type TpmQuoter } from './helpers/tpm-quotes.ts'
import type { QuoteVector } from './helpers/vector-file.ts'

let quoter: TpmQuoter
let vectors: QuoteVector[]

beforeAll(async () => {
  quoter = await startQuoter()
  vectors = await makeVectors(quoter)
}, 180_000)

afterAll(async () => {
  await quoter?.stop()
})

function outcome(v: QuoteVector): string {
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

describe('fresh quotes from a real swtpm', () => {
  it('each get their expected outcome', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(30)
    const got = Object.fromEntries(vectors.map((v) => [v.name, outcome(v)]))
    const want = Object.fromEntries(vectors.map((v) => [v.name, v.expect]))
    expect(got).toEqual(want)
    expect(Object.values(want).filter((c) => c === 'ok').length).toBeGreaterThanOrEqual(6)
  })
})
