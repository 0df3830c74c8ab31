/**
 * The sortition vectors (SPEC-SORTITION.md §7) match their generator, and each is checked
 * against code that did not write it: the seed against ethers' `solidityPackedKeccak256`, the
 * verifier's address against an ethers `Wallet`, the ticket's proof with `@digicap/vrf`'s verify,
 * and every score against the spec's formula evaluated in floating point (within its stated
 * error). `onchain.test.ts` checks the same files against `SortitionScore.sol`.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SECP256K1_SHA256_TAI, verify } from '@digicap/vrf'
import { getBytes, hexlify, solidityPackedKeccak256, Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  generateSortitionVectors,
  parseSortitionVector,
  SORTITION_VECTOR_DIR,
} from '../scripts/generate-sortition-vectors.ts'
import { MIN_SORTITION_WEIGHT } from '../src/index.ts'

const files = readdirSync(SORTITION_VECTOR_DIR).sort()
const vectors = files.map((name) => ({
  name,
  v: parseSortitionVector(readFileSync(join(SORTITION_VECTOR_DIR, name), 'utf8')),
}))
const one = (v: Map<string, string[]>, key: string): string => {
  const values = v.get(key)
  if (values?.length !== 1) throw new Error(`expected one ${key}`)
  return values[0] as string
}

/** −log₂((beta + 1) / 2²⁵⁶) · 2³², in floating point: the spec's formula, not its algorithm. */
function floatNegLog2(betaHex: string): number {
  const m = BigInt(betaHex) + 1n
  const bits = m.toString(2).length
  // log₂ m = (bits − 53) + log₂(top 53 bits), exact enough for a 2⁻²⁰ bound
  const top = bits > 53 ? Number(m >> BigInt(bits - 53)) : Number(m)
  const log2m = (bits > 53 ? bits - 53 : 0) + Math.log2(top)
  return (256 - log2m) * 2 ** 32
}

/**
 * How far the −log₂(u) a score implies is from the float formula, in log₂ units: a score is
 * ⌊N · 2⁹⁶ / w⌋ with N = −log₂(u) · 2³², so N lies within w / 2⁹⁶ of score · w / 2⁹⁶.
 */
function impliedNegLog2Error(score: bigint, weight: bigint, betaHex: string): number {
  const implied = Number((score * weight) >> 96n) / 2 ** 32
  const slack = Number(weight) / 2 ** 128 + 2 ** -32
  return Math.max(0, Math.abs(implied - floatNegLog2(betaHex) / 2 ** 32) - slack)
}

/** The vector's seed, checked against keccak256(jobId ‖ blockhash) as ethers packs it. */
function checkedSeed(v: Map<string, string[]>): string {
  const seed = solidityPackedKeccak256(
    ['bytes32', 'bytes32'],
    [one(v, 'job-id'), one(v, 'grant-block-hash')],
  )
  expect(one(v, 'seed')).toBe(seed)
  return seed
}

describe('sortition vectors', () => {
  it('the files are what the generator writes (run `pnpm vectors:sortition` after a change)', () => {
    const generated = generateSortitionVectors()
    expect([...generated.keys()].sort()).toEqual(files)
    for (const [name, content] of generated)
      expect(readFileSync(join(SORTITION_VECTOR_DIR, name), 'utf8')).toBe(content)
  })

  it('every score is −log₂(u) · 2⁹⁶ / weight, with −log₂(u) within 2⁻²⁰ of the real logarithm', () => {
    const scores = vectors.filter(({ v }) => one(v, 'case') === 'score')
    expect(scores.length).toBeGreaterThanOrEqual(16)
    for (const { name, v } of scores) {
      const negLog2 = BigInt(one(v, 'neg-log2'))
      const weight = BigInt(one(v, 'weight'))
      expect(weight >= MIN_SORTITION_WEIGHT, name).toBe(true)
      expect(Math.abs(Number(negLog2) - floatNegLog2(one(v, 'beta'))) / 2 ** 32, name).toBeLessThan(
        2 ** -20,
      )
      expect(BigInt(one(v, 'score')), name).toBe((negLog2 << 96n) / weight)
    }
  })

  it('the ticket: seed, address and proof check out with independent code', () => {
    const v = vectors.find(({ name }) => name === 'ticket.txt')!.v
    const seed = checkedSeed(v)
    expect(one(v, 'address')).toBe(new Wallet(one(v, 'secret-key')).address)
    const beta = verify(
      SECP256K1_SHA256_TAI,
      getBytes(one(v, 'public-key')),
      getBytes(seed),
      getBytes(one(v, 'proof')),
    )
    expect(hexlify(beta)).toBe(one(v, 'beta'))
    const weight = BigInt(one(v, 'stake')) * BigInt(one(v, 'reputation'))
    expect(impliedNegLog2Error(BigInt(one(v, 'score')), weight, one(v, 'beta'))).toBeLessThan(
      2 ** -20,
    )
  })

  it('the committee: the seats are the 4 lowest listed scores, lowest first', () => {
    const v = vectors.find(({ name }) => name === 'committee-4-of-7.txt')!.v
    checkedSeed(v)
    const tickets = (v.get('ticket') ?? []).map((line) => {
      const [address, beta, stake, reputation, score] = line.split(' ') as string[]
      return { address, beta, weight: BigInt(stake!) * BigInt(reputation!), score: BigInt(score!) }
    })
    expect(tickets).toHaveLength(7)
    for (const t of tickets)
      expect(impliedNegLog2Error(t.score, t.weight, t.beta as string)).toBeLessThan(2 ** -20)
    const seats = [...tickets]
      .sort((a, b) => (a.score < b.score ? -1 : a.score > b.score ? 1 : 0))
      .slice(0, Number(one(v, 'seats')))
      .map((t) => t.address)
    expect(one(v, 'committee').split(' ')).toEqual(seats)
  })
})
