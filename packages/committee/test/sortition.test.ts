import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { VrfProofError } from '@digicap/vrf'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { solidityPackedKeccak256 } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  committeeSize,
  drawCommittee,
  drawTicket,
  jobSeed,
  negLog2Uniform,
  rankTickets,
  SortitionError,
  selectionWeight,
  sortitionScore,
  type Ticket,
  verifyTicket,
} from '../src/index.ts'

const toHexString = (b: Uint8Array): string => Buffer.from(b).toString('hex')

const beta = (hex: string) => Uint8Array.from(Buffer.from(hex.padStart(64, '0'), 'hex'))
const reasonOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    if (err instanceof SortitionError) return err.reason
    throw err
  }
  return undefined
}

describe('jobSeed', () => {
  it('is keccak256(abi.encodePacked(jobId, blockhash)), what a contract computes', () => {
    const jobId = randomBytes(32)
    const blockHash = randomBytes(32)
    expect(`0x${toHexString(jobSeed(jobId, blockHash))}`).toBe(
      solidityPackedKeccak256(['bytes32', 'bytes32'], [jobId, blockHash]),
    )
  })
  it('refuses ids and hashes that are not 32 bytes', () => {
    expect(() => jobSeed(new Uint8Array(31), new Uint8Array(32))).toThrow(InvalidArgumentError)
    expect(() => jobSeed(new Uint8Array(32), new Uint8Array(33))).toThrow(InvalidArgumentError)
    expect(() => jobSeed('x' as unknown as Uint8Array, new Uint8Array(32))).toThrow(TypeError)
  })
})

describe('negLog2Uniform and sortitionScore', () => {
  it('maps the extremes exactly: beta = 2²⁵⁶−1 → 0, beta = 0 → 256, beta = 2²⁵⁵−1 → 1', () => {
    expect(negLog2Uniform(beta('f'.repeat(64)))).toBe(0n)
    expect(negLog2Uniform(beta('0'))).toBe(256n << 32n)
    expect(negLog2Uniform(beta(`7${'f'.repeat(63)}`))).toBe(1n << 32n)
  })
  it('is −log₂((beta+1)/2²⁵⁶) within 2⁻²⁰ and never increases with beta (2,000 random outputs)', () => {
    let prev: { b: bigint; v: bigint } | undefined
    const values = Array.from({ length: 2000 }, () => randomBytes(32))
      .map((b) => ({ b: BigInt(`0x${toHexString(b)}`), v: negLog2Uniform(b) }))
      .sort((x, y) => (x.b < y.b ? -1 : 1))
    for (const { b, v } of values) {
      const exact = -Math.log2((Number(b) + 1) / 2 ** 256)
      expect(Math.abs(Number(v) / 2 ** 32 - exact)).toBeLessThan(2 ** -20)
      if (prev) expect(v <= prev.v).toBe(true)
      prev = { b, v }
    }
  })
  it('gives a heavier node a lower (better) score for the same output', () => {
    const b = randomBytes(32)
    expect(sortitionScore(b, 10n) < sortitionScore(b, 5n)).toBe(true)
  })
})

describe('drawCommittee', () => {
  const tickets = (count: number): Ticket[] =>
    Array.from({ length: count }, (_, i) => ({
      id: `n${i}`,
      beta: randomBytes(32),
      weight: BigInt(1 + i),
    }))

  it('seats n = 3f + 1 lowest scores, leader first, whatever the input order', () => {
    const all = tickets(20)
    const committee = drawCommittee(all)
    expect(committee.length).toBe(4)
    expect(drawCommittee(all, { faults: 2 }).length).toBe(7)
    const ranked = rankTickets(all)
    expect(committee.map((t) => t.id)).toEqual(ranked.slice(0, 4).map((t) => t.id))
    for (let i = 1; i < ranked.length; i++)
      expect(ranked[i - 1]!.score <= ranked[i]!.score).toBe(true)
    expect(drawCommittee([...all].reverse()).map((t) => t.id)).toEqual(committee.map((t) => t.id))
    expect(committeeSize(1)).toBe(4)
    expect(committeeSize(10)).toBe(31)
  })

  it('refuses duplicates, weightless or malformed tickets, too few tickets and a bad f', () => {
    const all = tickets(6)
    expect(reasonOf(() => drawCommittee([...all, { ...all[0]! }]))).toBe('duplicate-ticket')
    expect(
      reasonOf(() => drawCommittee([...all, { id: 'z', beta: randomBytes(32), weight: 0n }])),
    ).toBe('weight')
    expect(
      reasonOf(() => drawCommittee([...all, { id: 'z', beta: randomBytes(31), weight: 1n }])),
    ).toBe('ticket')
    expect(reasonOf(() => drawCommittee(all, { faults: 2 }))).toBe('too-few')
    expect(reasonOf(() => drawCommittee(all, { faults: -1 }))).toBe('size')
    expect(reasonOf(() => drawCommittee(all, { faults: 1.5 }))).toBe('size')
    expect(selectionWeight(0n, 500n)).toBe(0n)
    expect(selectionWeight(10n, 0n)).toBe(0n)
    expect(selectionWeight(10n, 7n)).toBe(70n)
  })

  it('runs end to end with real VRF proofs: every verifier computes the same committee', () => {
    const seed = jobSeed(randomBytes(32), randomBytes(32))
    const nodes = Array.from({ length: 12 }, (_, i) => ({
      sk: secp256k1.utils.randomSecretKey(),
      weight: selectionWeight(BigInt(1 + (i % 4)) * 10n ** 16n, BigInt(100 + 50 * i)),
    }))
    const published = nodes.map((n) => ({ ...drawTicket(n.sk, seed), weight: n.weight }))
    // Any observer re-verifies every proof and ranks; two observers with different orders agree.
    const observe = (list: typeof published): string[] =>
      drawCommittee(
        list.map((p) => ({
          id: toHexString(p.publicKey),
          beta: verifyTicket(p.publicKey, seed, p.proof),
          weight: p.weight,
        })),
      ).map((t) => t.id)
    const a = observe(published)
    expect(a.length).toBe(4)
    expect(observe([...published].reverse())).toEqual(a)
    // A node cannot pass off another seed's proof (say, a luckier one) as this job's ticket.
    const other = drawTicket(nodes[0]!.sk, jobSeed(randomBytes(32), randomBytes(32)))
    expect(() => verifyTicket(other.publicKey, seed, other.proof)).toThrow(VrfProofError)
  })
})
