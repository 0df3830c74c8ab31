/**
 * Cross-check with `tpm2_checkquote` on every vector (genuine swtpm quotes and tampered
 * ones): both accept every genuine quote (but one, below); whatever tpm2_checkquote refuses,
 * we refuse too; and we refuse cases it lets through (bytes after the signature, a sha1 bank,
 * a scheme other than the AK's). It knows nothing of EKs or previous quotes, so the
 * AK-under-another-EK and reboot cases are ours alone as well.
 *
 * The one exception: tpm2_checkquote 5.4 fails to verify swtpm's genuine RSAPSS quotes (salt
 * length = digest length, which node:crypto verifies with either the exact length or auto).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { verifyQuote } from '../src/index.ts'
import { checkquoteAccepts } from './helpers/checkquote.ts'
import { parseVector, type QuoteVector, VECTOR_DIR } from './helpers/vector-file.ts'

const vectors = readdirSync(VECTOR_DIR)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => parseVector(readFileSync(join(VECTOR_DIR, f), 'utf8')))
  // tpm2_checkquote's PCR file holds one bank's values per PCR index; skip the two-bank quote.
  .filter((v) => v.name !== 'pcr-two-banks')

function oursAccepts(v: QuoteVector): boolean {
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
    return true
  } catch (err) {
    if (err instanceof DigicapError) return false
    throw err
  }
}

/** Genuine quotes tpm2_checkquote wrongly refuses (see the file comment). */
const CHECKQUOTE_FALSE_REFUSALS = ['rsapss-valid']

const theirs = new Map<string, boolean>()

beforeAll(async () => {
  for (const v of vectors) theirs.set(v.name, await checkquoteAccepts(v))
}, 120_000)

describe('stricter than tpm2_checkquote', () => {
  it('both accept every genuine quote', () => {
    const genuine = vectors.filter((v) => v.expect === 'ok')
    expect(genuine.length).toBeGreaterThanOrEqual(6)
    for (const v of genuine) {
      const want = !CHECKQUOTE_FALSE_REFUSALS.includes(v.name)
      expect([v.name, oursAccepts(v), theirs.get(v.name)]).toEqual([v.name, true, want])
    }
  })

  it('we refuse everything tpm2_checkquote refuses', () => {
    const refused = vectors.filter(
      (x) => theirs.get(x.name) === false && !CHECKQUOTE_FALSE_REFUSALS.includes(x.name),
    )
    expect(refused.length).toBeGreaterThanOrEqual(10)
    for (const v of refused) {
      expect([v.name, oursAccepts(v)]).toEqual([v.name, false])
    }
  })

  it('and more: cases tpm2_checkquote accepts that we refuse', () => {
    const onlyOurs = vectors
      .filter((v) => theirs.get(v.name) === true && !oursAccepts(v))
      .map((v) => v.name)
    expect(onlyOurs).toEqual(
      expect.arrayContaining([
        'signature-trailing',
        'pcr-bank-sha1',
        'signature-scheme-pss-for-rsassa-ak',
        'ak-under-other-ek',
        'power-loss-between',
        'restart-between',
      ]),
    )
    console.log(`refused by us, accepted by tpm2_checkquote: ${onlyOurs.join(', ')}`)
  })
})
