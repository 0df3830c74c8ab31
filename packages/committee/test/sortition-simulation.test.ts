import { describe, expect, it } from 'vitest'
import {
  binomialOverFault,
  byzantineSet,
  makeNodes,
  overFaultRate,
  proportionality,
  simulateRankings,
  simulateWaves,
  sybilOdds,
} from '../bench/simulate.ts'
import {
  nextReputation,
  passesToReach,
  REPUTATION_INITIAL,
  REPUTATION_MAX,
  reputationAfter,
  ticketWaves,
} from '../src/index.ts'

/** χ² critical value for 9 degrees of freedom at α = 0.001: a fair sortition fails 1 run in 1,000. */
const CHI2_9_DOF_999 = 27.88

// One simulation (300 jobs over 1,000 nodes, ~5 s) serves every test of this file.
const rankings = simulateRankings(makeNodes(1000, 42), 300, 4, 3)

describe('sortition over 1,000 nodes (stake × reputation weights spread 1 : 2,000)', () => {
  const nodes = makeNodes(1000, 42)
  const JOBS = 300

  it('gives each weight decile a share of seats and of first seats proportional to its weight (χ², α = 0.001)', () => {
    const p = proportionality(nodes, rankings, 4)
    expect(p.chiSquare).toBeLessThan(CHI2_9_DOF_999)
    expect(p.chiSquareLeader).toBeLessThan(CHI2_9_DOF_999)
    // The heaviest decile really is favoured and the lightest really is not (not a flat draw).
    expect(p.rows[9]!.seatShare).toBeGreaterThan(5 * p.rows[0]!.seatShare)
  })

  it('puts more than f Byzantine members in a committee at the binomial rate for 10, 20, 30 % Byzantine weight', () => {
    for (const fraction of [0.1, 0.2, 0.3]) {
      const { ids, share } = byzantineSet(nodes, fraction, 7)
      const observed = overFaultRate(rankings, ids, 1)
      const expected = binomialOverFault(share, 1)
      // Tolerance: 4 standard errors of a 300-job estimate, plus 0.02 for drawing without
      // replacement (which only lowers the rate).
      const sigma = Math.sqrt((expected * (1 - expected)) / JOBS)
      expect(Math.abs(observed - expected)).toBeLessThan(4 * sigma + 0.02)
    }
  })
})

describe('a Sybil with many fresh addresses gains no selection odds (reputation curve)', () => {
  const nodes = makeNodes(1000, 42)
  const JOBS = 300
  const honestTop = rankings
  const honestWeight = nodes.reduce((s, n) => s + n.weight, 0n)
  const honestStake = nodes.reduce((s, n) => s + n.stake, 0n)
  /** The Sybil brings 10 % of the honest nodes' stake. */
  const stake = honestStake / 10n
  const fresh = BigInt(REPUTATION_INITIAL)
  const sigma = (p: number) => Math.sqrt((p * (1 - p)) / (4 * JOBS))

  it('fresh addresses: weight and seats stay below 0.3 % (measured 0.02 %) however many addresses share the stake', () => {
    for (const identities of [1, 10, 100]) {
      const odds = sybilOdds(honestTop, honestWeight, { identities, stake, reputation: fresh })
      expect(odds.weightShare).toBeLessThan(0.003)
      expect(odds.seatShare).toBeLessThanOrEqual(
        odds.weightShare + 4 * sigma(odds.weightShare) + 0.001,
      )
      expect(odds.twoSeatRate).toBeLessThanOrEqual(0.01)
    }
  })

  it('the same stake in one established address (reputation 500) gets over 20× (measured ~300×) the seats of any fresh split', () => {
    const established = sybilOdds(honestTop, honestWeight, {
      identities: 1,
      stake,
      reputation: 500n,
    })
    const freshSplit = sybilOdds(honestTop, honestWeight, {
      identities: 100,
      stake,
      reputation: fresh,
    })
    expect(established.seatShare).toBeGreaterThan(0.05)
    expect(established.seatShare).toBeGreaterThan(20 * freshSplit.seatShare)
  })

  it('splitting never lifts the seat share above the weight share (40 % of the stake in 1, 10, 100 addresses)', () => {
    // A heavy identity is capped at one seat, so splitting helps it up to, never past, its
    // weight share: the bound a Sybil works against is its weight, i.e. stake × earned reputation.
    const heavy = (honestStake * 4n) / 10n
    for (const identities of [1, 10, 100]) {
      const odds = sybilOdds(honestTop, honestWeight, {
        identities,
        stake: heavy,
        reputation: 525n,
      })
      expect(odds.seatShare).toBeLessThanOrEqual(odds.weightShare + 4 * sigma(odds.weightShare))
    }
  })

  it('passing minReputation(50) costs each address 41 settled passes; a fail halves, an equivocation zeroes', () => {
    expect(reputationAfter(0)).toBe(1)
    expect(passesToReach(50)).toBe(41)
    expect(reputationAfter(40)).toBeLessThan(50)
    expect(reputationAfter(41)).toBeGreaterThanOrEqual(50)
    expect(passesToReach(500)).toBe(93)
    expect(nextReputation(600, 'fail')).toBe(300)
    expect(nextReputation(600, 'equivocation')).toBe(0)
    // 0 is final: one pass must not re-admit a caught node to minReputation(1).
    expect(nextReputation(0, 'pass')).toBe(0)
    expect(passesToReach(1, 0)).toBe(Number.POSITIVE_INFINITY)
    expect(nextReputation(600, 'timeout')).toBe(600)
    expect(nextReputation(REPUTATION_MAX, 'pass')).toBe(REPUTATION_MAX)
    expect(() => nextReputation(1001, 'pass')).toThrow(RangeError)
    expect(() => nextReputation(1.5, 'pass')).toThrow(RangeError)
    expect(() => nextReputation(5, 'won' as never)).toThrow(RangeError)
    // Never decreasing on a pass, never increasing on a fail, over the whole range (from 1: 0 is final).
    for (let r = 1; r <= REPUTATION_MAX; r++) {
      expect(nextReputation(r, 'pass')).toBeGreaterThanOrEqual(Math.min(r + 1, REPUTATION_MAX))
      expect(nextReputation(r, 'fail')).toBeLessThanOrEqual(r)
    }
  })
})

describe('ticket waves over 1,000 nodes (ADR 0065): few tickets sent, the same committees', () => {
  const nodes = makeNodes(1000, 42)
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const waves = ticketWaves(20)

  it('n = 4 and n = 7: after the first job (no reference: all 1,000 send) about 2n tickets a job, never a different committee', () => {
    for (const [seats, most] of [
      [4, 12],
      [7, 21],
    ] as const) {
      const o = simulateWaves(nodes, 120, { seats, waves })
      expect(o.submissions[0]).toBe(1000)
      expect(o.mismatches).toBe(0)
      // Measured 7.9 (n = 4) and 13.9 (n = 7) over 300 jobs: about 1 % of sending every ticket.
      expect(mean(o.submissions.slice(1))).toBeLessThan(most)
      expect(Math.max(...o.submissions.slice(1))).toBeLessThan(60)
    }
  })

  it('without the margin for passes to come, a few tickets fewer (the margin costs little)', () => {
    const exact = simulateWaves(nodes, 120, { seats: 4, waves, passesAhead: 0 })
    const margin = simulateWaves(nodes, 120, { seats: 4, waves })
    expect(exact.mismatches).toBe(0)
    expect(mean(exact.submissions.slice(1))).toBeLessThanOrEqual(mean(margin.submissions.slice(1)))
    expect(mean(margin.submissions.slice(1))).toBeLessThan(mean(exact.submissions.slice(1)) + 2)
  })

  it('a stale reference (every stake ×1,024, or ÷16 … ÷1,024, from job 20 on) costs tickets or waves, never a seat', () => {
    const up = simulateWaves(nodes, 60, {
      seats: 4,
      waves,
      weightChange: { atJob: 20, factor: 1024n, divisor: 1n },
    })
    expect(up.mismatches).toBe(0)
    // Scores 1,024× lower than the reference: nearly every ticket is in wave 0 until the history
    // catches up.
    expect(up.submissions[20]).toBeGreaterThan(800)
    expect(mean(up.submissions.slice(40))).toBeLessThan(12)
    for (const divisor of [16n, 64n, 256n, 1024n]) {
      const down = simulateWaves(nodes, 45, {
        seats: 4,
        waves,
        weightChange: { atJob: 20, factor: 1n, divisor },
      })
      expect(down.mismatches).toBe(0)
      // Scores higher than the reference: the seats fill in later waves, never the last one
      // (16 waves reach 2¹⁶× the reference), and no job sends every ticket.
      expect(Math.max(...down.lastSeatedWave.slice(20))).toBeLessThan(waves - 1)
      expect(Math.max(...down.submissions.slice(20))).toBeLessThan(100)
    }
  })
})
