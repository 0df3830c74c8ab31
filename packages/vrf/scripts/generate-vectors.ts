/**
 * Writes the invalid-proof vectors in test/vectors/ (one file per case), each derived from a
 * valid published vector by one change, so each one trips exactly one check of `verify`.
 * Run: `pnpm --filter @digicap/vrf vectors`. The valid vectors are copied by hand from
 * their cited sources and never regenerated.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { P256_SHA256_TAI, SECP256K1_SHA256_TAI, suiteLengths } from '../src/index.ts'
import type { EcvrfSuite } from '../src/suite.ts'

const dir = join(import.meta.dirname, '../test/vectors')
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fromHex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

function fieldsOf(file: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
    const at = line.indexOf(': ')
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 2)
  }
  return out
}

/** An x in [0, p) that is the x of no curve point. */
function xOffCurve(suite: EcvrfSuite): bigint {
  const { Fp } = suite.Point
  const { a, b } = suite.Point.CURVE()
  for (let x = 1n; ; x++) {
    const rhs = Fp.add(Fp.add(Fp.mul(Fp.sqr(x), x), Fp.mul(a, x)), b)
    try {
      Fp.sqrt(rhs)
    } catch {
      return x
    }
  }
}

const be = (n: bigint, len: number): Uint8Array => fromHex(n.toString(16).padStart(len * 2, '0'))

interface Case {
  suite: EcvrfSuite
  source: string
  name: string
  note: string
  error: 'VrfProofError' | 'VrfKeyError'
  reason: string
  pk: Uint8Array
  alpha: Uint8Array
  pi: Uint8Array
}

function casesFrom(suite: EcvrfSuite, base: string, source: string): Case[] {
  const f = fieldsOf(source)
  const pk = fromHex(f.pk!)
  const alpha = fromHex(f.alpha!)
  const pi = fromHex(f.pi!)
  const { ptLen, fLen, proofLen } = suiteLengths(suite)
  const n = suite.Point.Fn.ORDER
  const p = suite.Point.Fp.ORDER
  const edit = (fn: (b: Uint8Array) => void): Uint8Array => {
    const b = pi.slice()
    fn(b)
    return b
  }
  const withS = (s: bigint): Uint8Array => edit((b) => b.set(be(s, 32), proofLen - 32))
  const withGammaX = (x: bigint): Uint8Array => edit((b) => b.set(be(x, fLen), 1))
  const c = (
    name: string,
    note: string,
    reason: string,
    over: Partial<Case> = {},
    error: Case['error'] = 'VrfProofError',
  ): Case => ({
    suite,
    source,
    name: `${base}-${name}`,
    note,
    error,
    reason,
    pk,
    alpha,
    pi,
    ...over,
  })
  return [
    c('short', 'proof one byte short', 'length', { pi: pi.slice(0, -1) }),
    c('long', 'proof with one trailing zero byte', 'length', { pi: Uint8Array.of(...pi, 0) }),
    c('empty', 'empty proof', 'length', { pi: new Uint8Array(0) }),
    c('gamma-uncompressed-prefix', 'Gamma prefix 0x04', 'gamma', { pi: edit((b) => (b[0] = 4)) }),
    c('gamma-identity-prefix', 'Gamma prefix 0x00', 'gamma', { pi: edit((b) => (b[0] = 0)) }),
    c('gamma-x-off-curve', 'Gamma x is the x of no point', 'gamma', {
      pi: withGammaX(xOffCurve(suite)),
    }),
    c('gamma-x-above-p', 'Gamma x = p (not a field element)', 'gamma', { pi: withGammaX(p) }),
    c('s-equal-n', 's = n (non-canonical)', 's-range', { pi: withS(n) }),
    c('s-max', 's = 2^256 - 1', 's-range', { pi: withS((1n << 256n) - 1n) }),
    c('s-plus-one', 's + 1', 'challenge', {
      pi: withS((BigInt(`0x${hex(pi.slice(-32))}`) + 1n) % n),
    }),
    c('c-flipped-bit', 'lowest bit of c flipped', 'challenge', {
      pi: edit((b) => (b[ptLen + suite.cLen - 1] = b[ptLen + suite.cLen - 1]! ^ 1)),
    }),
    c('gamma-negated', 'Gamma replaced by -Gamma', 'challenge', {
      pi: edit((b) => (b[0] = b[0]! ^ 1)),
    }),
    c('other-alpha', 'alpha with one more byte', 'challenge', {
      alpha: Uint8Array.of(...alpha, 0),
    }),
    c(
      'pk-off-curve',
      'public key x is the x of no point',
      'public-key',
      { pk: Uint8Array.of(2, ...be(xOffCurve(suite), fLen)) },
      'VrfKeyError',
    ),
    c(
      'pk-uncompressed',
      'public key in uncompressed form',
      'public-key',
      { pk: suite.Point.fromBytes(pk).toBytes(false) },
      'VrfKeyError',
    ),
  ]
}

const all = [
  ...casesFrom(P256_SHA256_TAI, 'invalid-p256', 'rfc9381-p256-example-10.txt'),
  ...casesFrom(SECP256K1_SHA256_TAI, 'invalid-secp256k1', 'vrf-rs-secp256k1-verify.txt'),
]
for (const v of all) {
  const text = [
    `source: scripts/generate-vectors.ts from ${v.source}: ${v.note}`,
    `suite: ${v.suite.name}`,
    'expect: invalid',
    `error: ${v.error}`,
    `reason: ${v.reason}`,
    `pk: ${hex(v.pk)}`,
    `alpha: ${hex(v.alpha)}`,
    `pi: ${hex(v.pi)}`,
    '',
  ].join('\n')
  writeFileSync(join(dir, `${v.name}.txt`), text)
}
console.log(`wrote ${all.length} invalid vectors`)
