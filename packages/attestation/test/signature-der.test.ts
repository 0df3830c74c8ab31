/**
 * The ECDSA quote signature reaches node:crypto as DER built from the TPM's (r, s) (the cheapest
 * call, bench/verify.ts). The DER is canonical and the outcome is the same as node:crypto's own
 * IEEE-P1363 path for every (r, s): genuine low-s and high-s signatures pass (a TPM does not
 * normalise s), so do their values with extra leading zero bytes (a TPM2B may carry them), and
 * anything else — edited, swapped, zero, negative-looking, longer than the curve — is refused
 * with `QUOTE_SIGNATURE`.
 */
import { verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { importAttestationKey, parseSignature, TPM_ALG } from '../src/index.ts'
import { ecdsaDer, verifyQuoteSignature } from '../src/verifier/signature-check.ts'
import { parseVector, VECTOR_DIR } from './helpers/vector-file.ts'

const load = (name: string) => parseVector(readFileSync(join(VECTOR_DIR, `${name}.txt`), 'utf8'))
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))

/** Reads a DER ECDSA-Sig-Value strictly; throws unless canonical. */
function readDer(der: Uint8Array): [bigint, bigint] {
  let at = 0
  const byte = () => {
    if (at >= der.length) throw new Error('short')
    return der[at++] as number
  }
  if (byte() !== 0x30) throw new Error('not a SEQUENCE')
  let len = byte()
  if (len === 0x81) {
    len = byte()
    if (len < 0x80) throw new Error('long form for a short length')
  }
  if (len !== der.length - at) throw new Error('SEQUENCE length')
  const int = (): bigint => {
    if (byte() !== 0x02) throw new Error('not an INTEGER')
    const n = byte()
    const v = der.subarray(at, at + n)
    at += n
    if (v.length !== n || n === 0) throw new Error('INTEGER length')
    if ((v[0] as number) & 0x80) throw new Error('negative')
    if (n > 1 && v[0] === 0 && !((v[1] as number) & 0x80)) throw new Error('not minimal')
    return BigInt(`0x${Buffer.from(v).toString('hex')}`)
  }
  const out: [bigint, bigint] = [int(), int()]
  if (at !== der.length) throw new Error('trailing')
  return out
}

const big = (b: Uint8Array) => (b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`))

describe('ecdsaDer', () => {
  it('is canonical DER of (r, s) for any values that fit, and undefined past the size', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 70 }),
        fc.uint8Array({ minLength: 1, maxLength: 70 }),
        fc.constantFrom(32, 48, 66),
        (r, s, size) => {
          const der = ecdsaDer(r, s, size)
          const fits = (v: Uint8Array) => big(v).toString(16).length <= 2 * size
          if (!fits(r) || !fits(s)) return der === undefined
          expect(readDer(der as Uint8Array)).toEqual([big(r), big(s)])
          return true
        },
      ),
      { numRuns: 2000 },
    )
    expect(ecdsaDer(new Uint8Array(0), Uint8Array.of(1), 32)).toBeUndefined()
  })
})

describe.each(['ecc-valid-low-s', 'ecc-valid-high-s'])('the ECDSA check on %s', (name) => {
  const v = load(name)
  const ak = importAttestationKey({ ekPublic: v.ekPublic, akPublic: v.akPublic })
  const sig = parseSignature(v.signature)
  if (sig.sigAlg !== TPM_ALG.ECDSA) throw new Error('not an ECDSA vector')
  const outcome = (r: Uint8Array, s: Uint8Array): string => {
    try {
      verifyQuoteSignature(v.attest, { ...sig, r, s }, ak)
      return 'ok'
    } catch (err) {
      if (err instanceof DigicapError) return err.code
      throw err
    }
  }
  /** node:crypto's own P1363 path: the reference. */
  const reference = (r: Uint8Array, s: Uint8Array): string => {
    const pad = (x: Uint8Array) => {
      const b = Buffer.from(x)
      let i = 0
      while (i < b.length - 32 && b[i] === 0) i++
      const t = b.subarray(i)
      return t.length > 32 ? undefined : Buffer.concat([Buffer.alloc(32 - t.length), t])
    }
    const [pr, ps] = [pad(r), pad(s)]
    if (pr === undefined || ps === undefined || r.length === 0 || s.length === 0) {
      return 'QUOTE_SIGNATURE'
    }
    return verify(
      'sha256',
      v.attest,
      { key: ak.key, dsaEncoding: 'ieee-p1363' },
      Buffer.concat([pr, ps]),
    )
      ? 'ok'
      : 'QUOTE_SIGNATURE'
  }

  it('accepts the genuine signature, also with leading zero bytes on r and s', () => {
    expect(outcome(sig.r, sig.s)).toBe('ok')
    const z = new Uint8Array(3)
    expect(outcome(cat(z, sig.r), cat(z.subarray(0, 1), sig.s))).toBe('ok')
  })

  it('refuses swapped, zero, edited and oversized values, as the P1363 path does', () => {
    const n = new Uint8Array(32)
    const cases: [Uint8Array, Uint8Array][] = [
      [sig.s, sig.r],
      [new Uint8Array(32), sig.s],
      [sig.r, new Uint8Array(1)],
      [cat(Uint8Array.of(1), sig.r), sig.s],
      [new Uint8Array(32).fill(0xff), sig.s],
      [n.fill(0x80), sig.s],
    ]
    for (const [r, s] of cases) {
      expect(outcome(r, s)).toBe('QUOTE_SIGNATURE')
      expect(reference(r, s)).toBe('QUOTE_SIGNATURE')
    }
  })

  it('agrees with the P1363 path on edits of every byte of r and s', () => {
    for (const zeros of [0, 2]) {
      for (let at = 0; at < 64; at++) {
        for (const xor of [0x01, 0x80, 0xff]) {
          const r = cat(new Uint8Array(zeros), sig.r)
          const s = cat(new Uint8Array(zeros), sig.s)
          const target = at < 32 ? r : s
          const i = zeros + (at % 32)
          target[i] = (target[i] as number) ^ xor
          const got = outcome(r, s)
          if (got !== 'QUOTE_SIGNATURE' || reference(r, s) !== got) {
            throw new Error(`byte ${at} ^ ${xor} with ${zeros} zeros: ${got}`)
          }
        }
      }
    }
  })
})
