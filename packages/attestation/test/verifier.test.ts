/**
 * verifyQuote's contract beyond the vectors: the binding, the check order (a quote wrong in
 * two ways reports the earlier check), the clock rules, and bad arguments.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError, InvalidArgumentError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  checkQuoteRollback,
  checkQuoteSequence,
  importAttestationKey,
  parseQuoteAttest,
  pcrCompositeDigest,
  quoteBinding,
  verifyQuote,
} from '../src/index.ts'
import { parseVector, VECTOR_DIR } from './helpers/vector-file.ts'

const load = (name: string) => parseVector(readFileSync(join(VECTOR_DIR, `${name}.txt`), 'utf8'))
const rsa = load('rsa-valid')
const ecc = load('ecc-valid-low-s')
const rsaKey = importAttestationKey({ ekPublic: rsa.ekPublic, akPublic: rsa.akPublic })

function code(f: () => unknown): string {
  try {
    f()
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
}

describe('quoteBinding', () => {
  const nonce = new Uint8Array(32).fill(1)
  const grantId = new Uint8Array(32).fill(2)
  const key = new Uint8Array(32).fill(3)

  it('is SHA-256(nonce ‖ grant id ‖ ephemeral key)', () => {
    const expected = createHash('sha256').update(nonce).update(grantId).update(key).digest()
    expect(Buffer.from(quoteBinding({ nonce, grantId, ephemeralPublicKey: key }))).toEqual(expected)
  })

  it('changes with each part', () => {
    const base = Buffer.from(quoteBinding({ nonce, grantId, ephemeralPublicKey: key })).toString(
      'hex',
    )
    const other = new Uint8Array(32).fill(9)
    for (const b of [
      quoteBinding({ nonce: other, grantId, ephemeralPublicKey: key }),
      quoteBinding({ nonce, grantId: other, ephemeralPublicKey: key }),
      quoteBinding({ nonce, grantId, ephemeralPublicKey: other }),
    ]) {
      expect(Buffer.from(b).toString('hex')).not.toBe(base)
    }
  })

  it('refuses parts of the wrong length', () => {
    expect(() =>
      quoteBinding({ nonce: nonce.subarray(1), grantId, ephemeralPublicKey: key }),
    ).toThrow(InvalidArgumentError)
    expect(() =>
      quoteBinding({ nonce, grantId: new Uint8Array(33), ephemeralPublicKey: key }),
    ).toThrow(InvalidArgumentError)
    expect(() => quoteBinding({ nonce, grantId, ephemeralPublicKey: new Uint8Array(0) })).toThrow(
      InvalidArgumentError,
    )
    expect(() => quoteBinding({ nonce, grantId, ephemeralPublicKey: new Uint8Array(134) })).toThrow(
      InvalidArgumentError,
    )
  })
})

describe('verifyQuote', () => {
  const evidence = { attest: rsa.attest, signature: rsa.signature, pcrValues: rsa.pcrValues }

  it('accepts a genuine quote with a raw record or an imported key, and returns what it parsed', () => {
    const out = verifyQuote(evidence, {
      attestationKey: { ekPublic: rsa.ekPublic, akPublic: rsa.akPublic },
      qualifyingData: rsa.qualifyingData,
    })
    expect(out.attest.clockInfo).toEqual(parseQuoteAttest(rsa.attest).clockInfo)
    expect(
      code(() =>
        verifyQuote(evidence, { attestationKey: rsaKey, qualifyingData: rsa.qualifyingData }),
      ),
    ).toBe('ok')
  })

  it('accepts swtpm RSAPSS quotes and refuses them with one bit flipped', () => {
    const pss = load('rsapss-valid')
    const key = {
      attestationKey: { ekPublic: pss.ekPublic, akPublic: pss.akPublic },
      qualifyingData: pss.qualifyingData,
    }
    const ev = { attest: pss.attest, signature: pss.signature, pcrValues: pss.pcrValues }
    expect(code(() => verifyQuote(ev, key))).toBe('ok')
    for (const at of [6, 100, pss.signature.length - 1]) {
      const signature = pss.signature.slice()
      signature[at] = (signature[at] ?? 0) ^ 0x80
      expect(code(() => verifyQuote({ ...ev, signature }, key))).toBe('QUOTE_SIGNATURE')
    }
  })

  it('reports the earliest failing check when several fail', () => {
    const wrongNonce = new Uint8Array(32)
    const badPcrs = new Map([...rsa.pcrValues].map(([k, v]) => [k, v.map((b) => b ^ 1)]))
    // nonce and PCR digest both wrong → nonce (step 5 before 7)
    expect(
      code(() =>
        verifyQuote(
          { ...evidence, pcrValues: badPcrs },
          { attestationKey: rsaKey, qualifyingData: wrongNonce },
        ),
      ),
    ).toBe('QUOTE_NONCE')
    // another signer and a wrong nonce → signer (step 3 before 5)
    expect(
      code(() =>
        verifyQuote(
          { attest: ecc.attest, signature: rsa.signature, pcrValues: rsa.pcrValues },
          { attestationKey: rsaKey, qualifyingData: wrongNonce },
        ),
      ),
    ).toBe('QUOTE_SIGNER')
    // wrong type and a sha1 signature → type (step 1 before 2)
    const type = rsa.attest.slice()
    type[5] = 0x17
    const sha1 = rsa.signature.slice()
    sha1[3] = 0x04
    expect(
      code(() =>
        verifyQuote(
          { ...evidence, attest: type, signature: sha1 },
          { attestationKey: rsaKey, qualifyingData: rsa.qualifyingData },
        ),
      ),
    ).toBe('QUOTE_TYPE')
  })

  it('refuses a quote whose PCR list differs from the expected one, in either direction', () => {
    expect(
      code(() =>
        verifyQuote(evidence, {
          attestationKey: rsaKey,
          qualifyingData: rsa.qualifyingData,
          pcrs: [0, 1, 2, 3, 4, 5, 6, 7],
        }),
      ),
    ).toBe('QUOTE_PCR_SELECTION')
    expect(
      code(() =>
        verifyQuote(evidence, {
          attestationKey: rsaKey,
          qualifyingData: rsa.qualifyingData,
          pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 22, 23],
        }),
      ),
    ).toBe('QUOTE_PCR_SELECTION')
  })

  it('refuses extra or short reported PCR values', () => {
    const extra = new Map(rsa.pcrValues)
    extra.set(8, new Uint8Array(32))
    expect(
      code(() =>
        verifyQuote(
          { ...evidence, pcrValues: extra },
          { attestationKey: rsaKey, qualifyingData: rsa.qualifyingData },
        ),
      ),
    ).toBe('QUOTE_PCR_DIGEST')
    const short = new Map(rsa.pcrValues)
    short.set(0, new Uint8Array(20))
    expect(
      code(() =>
        verifyQuote(
          { ...evidence, pcrValues: short },
          { attestationKey: rsaKey, qualifyingData: rsa.qualifyingData },
        ),
      ),
    ).toBe('QUOTE_PCR_DIGEST')
  })

  it('computes the same PCR digest as the TPM', () => {
    expect(Buffer.from(pcrCompositeDigest(rsa.pcrValues, rsa.pcrs))).toEqual(
      Buffer.from(parseQuoteAttest(rsa.attest).pcrDigest),
    )
  })

  it('refuses malformed expectations with InvalidArgumentError', () => {
    for (const pcrs of [[], [24], [1, 1], [-1], [0.5]]) {
      expect(
        code(() =>
          verifyQuote(evidence, {
            attestationKey: rsaKey,
            qualifyingData: rsa.qualifyingData,
            pcrs,
          }),
        ),
      ).toBe('INVALID_ARGUMENT')
    }
    expect(
      code(() =>
        verifyQuote(evidence, { attestationKey: rsaKey, qualifyingData: new Uint8Array(0) }),
      ),
    ).toBe('INVALID_ARGUMENT')
    expect(
      code(() =>
        verifyQuote(evidence, { attestationKey: rsaKey, qualifyingData: new Uint8Array(65) }),
      ),
    ).toBe('INVALID_ARGUMENT')
  })
})

describe('checkQuoteRollback (the release gate, across runs)', () => {
  const prev = { clock: 1000n, resetCount: 3, restartCount: 2 }
  it('accepts a reboot or a restart as a new epoch, even with a lower clock', () => {
    expect(code(() => checkQuoteRollback(prev, prev))).toBe('ok')
    expect(
      code(() => checkQuoteRollback(prev, { clock: 10n, resetCount: 4, restartCount: 0 })),
    ).toBe('ok')
    expect(code(() => checkQuoteRollback(prev, { ...prev, restartCount: 3, clock: 1n }))).toBe('ok')
  })
  it('refuses anything older than the last accepted quote', () => {
    expect(code(() => checkQuoteRollback(prev, { ...prev, clock: 999n }))).toBe('QUOTE_CLOCK')
    expect(code(() => checkQuoteRollback(prev, { ...prev, resetCount: 2, clock: 9999n }))).toBe(
      'QUOTE_CLOCK',
    )
    expect(
      code(() => checkQuoteRollback(prev, { clock: 9999n, resetCount: 3, restartCount: 1 })),
    ).toBe('QUOTE_CLOCK')
  })
})

describe('checkQuoteSequence', () => {
  const prev = { clock: 1000n, resetCount: 3, restartCount: 2 }
  it('accepts the same or a later clock with the same counters', () => {
    expect(code(() => checkQuoteSequence(prev, prev))).toBe('ok')
    expect(code(() => checkQuoteSequence(prev, { ...prev, clock: 5000n }))).toBe('ok')
  })
  it('tells a reset, a restart and a rollback apart', () => {
    expect(
      code(() => checkQuoteSequence(prev, { clock: 10n, resetCount: 4, restartCount: 0 })),
    ).toBe('QUOTE_REBOOT')
    expect(code(() => checkQuoteSequence(prev, { ...prev, restartCount: 3 }))).toBe('QUOTE_RESTART')
    expect(code(() => checkQuoteSequence(prev, { ...prev, clock: 999n }))).toBe('QUOTE_CLOCK')
    expect(code(() => checkQuoteSequence(prev, { ...prev, resetCount: 2, clock: 9999n }))).toBe(
      'QUOTE_CLOCK',
    )
    expect(code(() => checkQuoteSequence(prev, { ...prev, restartCount: 1, clock: 9999n }))).toBe(
      'QUOTE_CLOCK',
    )
  })
})
