import { createHash, randomBytes } from 'node:crypto'
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
  MIN_SORTITION_WEIGHT,
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
  it('leaves the caller’s output as it was, a Buffer included (whose slice() is a view)', () => {
    for (const b of [
      Buffer.from(randomBytes(32)),
      new Uint8Array(randomBytes(32)),
      Buffer.alloc(32, 0xff),
    ]) {
      const before = Uint8Array.from(b)
      const first = sortitionScore(b, 10n ** 18n)
      expect(Uint8Array.from(b)).toEqual(before)
      expect(sortitionScore(b, 10n ** 18n)).toBe(first)
    }
  })
  it('gives a heavier node a lower (better) score for the same output', () => {
    const b = randomBytes(32)
    expect(sortitionScore(b, 10n) < sortitionScore(b, 5n)).toBe(true)
  })
  it('fits the contract’s 96-bit seat from the smallest eligible weight on, at the worst output', () => {
    // beta = 0 is the largest −log₂(u): 256 · 2³²
    expect(sortitionScore(beta('0'), MIN_SORTITION_WEIGHT)).toBe(1n << 95n)
    // half that weight and the score would need a 97th bit
    expect(sortitionScore(beta('0'), MIN_SORTITION_WEIGHT / 2n)).toBe(1n << 96n)
  })
  it('keeps the winning scores wide when the stake is huge: weight, not ties, picks the seats', () => {
    // 1,000 nodes staking a million ether each, half at reputation 1,000 and half at 50: a total
    // weight of ~2^98.7. With the 2⁶⁴ factor (before ADR 0024's amendment) the winning scores were
    // −log₂(u)·2⁶⁴/w ≈ 2⁻⁴: 88 % of the seats scored 0, every job had tied seats broken by beta,
    // and the heavy half took 97.8 % of the seats for 95.2 % of the weight.
    const stake = 10n ** 24n
    const weightOf = (i: number) => selectionWeight(stake, i < 500 ? 1000n : 50n)
    const jobs = 240
    let heavy = 0
    let narrowest = 1n << 200n
    for (let job = 0; job < jobs; job++) {
      // Outputs as a hash of (job, node): the same every run.
      const tickets = Array.from({ length: 1000 }, (_, i) => ({
        id: `n${i}`,
        beta: createHash('sha256').update(`sortition-width/${job}/${i}`).digest(),
        weight: weightOf(i),
      }))
      const seats = rankTickets(tickets).slice(0, 4)
      expect(new Set(seats.map((t) => t.score)).size).toBe(4)
      for (const t of seats) {
        if (t.score < narrowest) narrowest = t.score
        if (Number(t.id.slice(1)) < 500) heavy++
      }
    }
    // Every seat's score keeps at least 16 bits, so rounding moves no seat's odds by more than 2⁻¹⁶.
    expect(narrowest >= 1n << 16n).toBe(true)
    // 960 seats: the heavy half's share within 2.5 points (~3.6 σ) of its 1000/1050 weight share.
    expect(Math.abs(heavy / (jobs * 4) - 1000 / 1050)).toBeLessThan(0.025)
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
