/**
 * The strict parsers on genuine swtpm structures (from the committed vectors) and on every
 * kind of damage: each prefix, each appended byte, random bytes and random edits end in a
 * typed error naming the field, never in anything else.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  importAttestationKey,
  parsePublic,
  parseQuoteAttest,
  parseSignature,
  QuoteVerificationError,
  TPM_ALG,
  TpmFormatError,
  verifyQuote,
} from '../src/index.ts'
import { parseVector, VECTOR_DIR } from './helpers/vector-file.ts'

const load = (name: string) => parseVector(readFileSync(join(VECTOR_DIR, `${name}.txt`), 'utf8'))
const rsa = load('rsa-valid')
const ecc = load('ecc-valid-high-s')
const pss = load('rsapss-valid')

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

/** Runs f; passes if it returns or throws a typed Digicap error, fails on anything else. */
function onlyTyped(f: () => unknown): void {
  try {
    f()
  } catch (err) {
    if (!(err instanceof TpmFormatError || err instanceof QuoteVerificationError)) throw err
    expect(typeof err.details.field === 'string' || err.code === 'QUOTE_SIGNATURE').toBe(true)
  }
}

describe('parseQuoteAttest', () => {
  it('reads a genuine swtpm quote', () => {
    const a = parseQuoteAttest(rsa.attest)
    expect(a.extraData).toEqual(rsa.qualifyingData)
    expect(a.pcrSelect).toEqual([{ hashAlg: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 23] }])
    expect(a.pcrDigest.length).toBe(32)
    expect(a.qualifiedSigner.length).toBe(34)
    expect(a.clockInfo.safe).toBe(true)
  })

  it('names the field for every truncation of a genuine quote', () => {
    const fields = new Set<string>()
    for (let n = 0; n < rsa.attest.length; n++) {
      const err = thrown(() => parseQuoteAttest(rsa.attest.subarray(0, n)))
      expect(err, `prefix ${n}`).toBeInstanceOf(TpmFormatError)
      const e = err as TpmFormatError
      expect(e.code).toBe('TPM_FORMAT')
      expect(e.details.structure).toBe('TPMS_ATTEST')
      fields.add(String(e.details.field))
    }
    for (const f of [
      'magic',
      'type',
      'qualifiedSigner',
      'extraData',
      'clockInfo.clock',
      'firmwareVersion',
      'attested.quote.pcrSelect.count',
      'attested.quote.pcrDigest',
    ]) {
      expect(fields).toContain(f)
    }
  })

  it('refuses trailing bytes, wrong magic and wrong type with the field named', () => {
    const trailing = thrown(() =>
      parseQuoteAttest(Uint8Array.of(...rsa.attest, 0)),
    ) as TpmFormatError
    expect([trailing.code, trailing.details.field, trailing.details.trailing]).toEqual([
      'TPM_FORMAT',
      '(end)',
      1,
    ])
    const magic = rsa.attest.slice()
    magic[0] = 0
    const m = thrown(() => parseQuoteAttest(magic)) as QuoteVerificationError
    expect([m.code, m.details.field]).toEqual(['QUOTE_MAGIC', 'magic'])
    const type = rsa.attest.slice()
    type[5] = 0x14 // TPM_ST_ATTEST_CERTIFY 0x8017 → 0x8014 (NV)
    const t = thrown(() => parseQuoteAttest(type)) as QuoteVerificationError
    expect([t.code, t.details.field]).toEqual(['QUOTE_TYPE', 'type'])
  })

  it('refuses a size field above the structure maximum before reading it', () => {
    const big = rsa.attest.slice()
    big[6] = 0x01 // qualifiedSigner.size 0x0122 > 66
    const e = thrown(() => parseQuoteAttest(big)) as TpmFormatError
    expect([e.code, e.details.field]).toEqual(['TPM_FORMAT', 'qualifiedSigner.size'])
  })
})

describe('parseSignature', () => {
  it('reads RSASSA, RSAPSS and ECDSA signatures from swtpm', () => {
    expect(parseSignature(rsa.signature)).toMatchObject({
      sigAlg: TPM_ALG.RSASSA,
      hashAlg: TPM_ALG.SHA256,
    })
    expect(parseSignature(pss.signature)).toMatchObject({
      sigAlg: TPM_ALG.RSAPSS,
      hashAlg: TPM_ALG.SHA256,
    })
    const e = parseSignature(ecc.signature)
    expect(e.sigAlg).toBe(TPM_ALG.ECDSA)
    if (e.sigAlg === TPM_ALG.ECDSA) expect([e.r.length, e.s.length]).toEqual([32, 32])
  })

  it('names the field: unknown sigAlg, unknown hash, trailing bytes, truncation', () => {
    const cases: [Uint8Array, string][] = [
      [Uint8Array.of(0x00, 0x05, 0x00, 0x0b), 'sigAlg'],
      [Uint8Array.of(0x00, 0x14, 0x00, 0x99), 'signature.hash'],
      [Uint8Array.of(...ecc.signature, 1), '(end)'],
      [ecc.signature.subarray(0, 40), 'signature.signatureS'],
      [rsa.signature.subarray(0, 5), 'signature.sig.size'],
      [rsa.signature.subarray(0, 10), 'signature.sig'],
    ]
    for (const [bytes, field] of cases) {
      const e = thrown(() => parseSignature(bytes)) as TpmFormatError
      expect([e.code, e.details.field], field).toEqual(['TPM_FORMAT', field])
    }
  })
})

describe('parsePublic', () => {
  it('computes the name swtpm gives an RSA and an ECC AK and the qualified name under the EK', () => {
    const a = importAttestationKey({ ekPublic: rsa.ekPublic, akPublic: rsa.akPublic })
    expect(a.public.type).toBe(TPM_ALG.RSA)
    expect(Buffer.from(a.qualifiedName)).toEqual(
      Buffer.from(parseQuoteAttest(rsa.attest).qualifiedSigner),
    )
    const e = importAttestationKey({ ekPublic: ecc.ekPublic, akPublic: ecc.akPublic })
    expect(e.public.type).toBe(TPM_ALG.ECC)
    expect(Buffer.from(e.qualifiedName)).toEqual(
      Buffer.from(parseQuoteAttest(ecc.attest).qualifiedSigner),
    )
    expect(a.name.subarray(0, 2)).toEqual(Uint8Array.of(0x00, 0x0b))
  })

  it('parses the TCG RSA EK template (restricted decrypt, AES-128-CFB)', () => {
    const ek = parsePublic(rsa.ekPublic)
    expect(ek).toMatchObject({
      type: TPM_ALG.RSA,
      keyBits: 2048,
      symmetric: { algorithm: TPM_ALG.AES, keyBits: 128 },
    })
  })

  it('names the field for every truncation and for an unknown type or curve', () => {
    for (let n = 0; n < ecc.akPublic.length; n++) {
      const e = thrown(() => parsePublic(ecc.akPublic.subarray(0, n))) as TpmFormatError
      expect(e, `prefix ${n}`).toBeInstanceOf(TpmFormatError)
      expect(typeof e.details.field).toBe('string')
    }
    const badType = ecc.akPublic.slice()
    badType[3] = 0x25 // SYMCIPHER
    expect((thrown(() => parsePublic(badType)) as TpmFormatError).details.field).toBe('type')
    // curveID sits after type, nameAlg, attributes, authPolicy (empty), symmetric NULL, scheme ECDSA+hash
    const badCurve = ecc.akPublic.slice()
    badCurve[2 + 2 + 2 + 4 + 2 + 2 + 4 + 1] = 0x42
    expect((thrown(() => parsePublic(badCurve)) as TpmFormatError).details.field).toBe(
      'parameters.curveID',
    )
  })

  it('refuses an AK that is not a restricted signing key', () => {
    const loose = ecc.akPublic.slice()
    loose[7] = (loose[7] ?? 0) & ~0x01 // clear `restricted` (bit 16 of objectAttributes)
    const e = thrown(() =>
      importAttestationKey({ ekPublic: ecc.ekPublic, akPublic: loose }),
    ) as QuoteVerificationError
    expect([e.code, e.details.field]).toEqual(['QUOTE_AK', 'objectAttributes'])
  })

  it('refuses an ECC point that is not on the curve', () => {
    const off = ecc.akPublic.slice()
    off[off.length - 1] = (off[off.length - 1] ?? 0) ^ 1
    const e = thrown(() =>
      importAttestationKey({ ekPublic: ecc.ekPublic, akPublic: off }),
    ) as QuoteVerificationError
    expect([e.code, e.details.field]).toEqual(['QUOTE_AK', 'unique'])
  })
})

describe('no input crashes the parsers or the verifier with anything but a typed error', () => {
  const expectation = {
    attestationKey: importAttestationKey({ ekPublic: rsa.ekPublic, akPublic: rsa.akPublic }),
    qualifyingData: rsa.qualifyingData,
  }
  const mutate = (base: Uint8Array) =>
    fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc
        .tuple(fc.nat(base.length), fc.uint8Array({ minLength: 1, maxLength: 4 }))
        .map(([at, patch]) => {
          const out = base.slice()
          out.set(patch.subarray(0, Math.max(0, out.length - at)), Math.min(at, out.length))
          return out
        }),
      fc.nat(base.length).map((n) => base.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((tail) => Uint8Array.of(...base, ...tail)),
    )

  it('parsers', () => {
    fc.assert(
      fc.property(mutate(rsa.attest), mutate(ecc.signature), mutate(ecc.akPublic), (a, s, p) => {
        onlyTyped(() => parseQuoteAttest(a))
        onlyTyped(() => parseSignature(s))
        onlyTyped(() => parsePublic(p))
      }),
      { numRuns: 2000 },
    )
  })

  it('verifyQuote, and nothing damaged is accepted', () => {
    fc.assert(
      fc.property(mutate(rsa.attest), mutate(rsa.signature), (attest, signature) => {
        const same =
          Buffer.from(attest).equals(Buffer.from(rsa.attest)) &&
          Buffer.from(signature).equals(Buffer.from(rsa.signature))
        try {
          verifyQuote({ attest, signature, pcrValues: rsa.pcrValues }, expectation)
          expect(same).toBe(true)
        } catch (err) {
          expect(err).toBeInstanceOf(DigicapError)
          expect([
            'TPM_FORMAT',
            'QUOTE_MAGIC',
            'QUOTE_TYPE',
            'QUOTE_SIGNATURE_SCHEME',
            'QUOTE_SIGNER',
            'QUOTE_SIGNATURE',
          ]).toContain((err as DigicapError).code)
        }
      }),
      { numRuns: 500 },
    )
  })
})
