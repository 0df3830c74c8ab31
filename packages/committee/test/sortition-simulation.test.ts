import { describe, expect, it } from 'vitest'
import {
  binomialOverFault,
  byzantineSet,
  makeNodes,
  overFaultRate,
  proportionality,
  simulateRankings,
} from '../bench/simulate.ts'

/** χ² critical value for 9 degrees of freedom at α = 0.001: a fair sortition fails 1 run in 1,000. */
const CHI2_9_DOF_999 = 27.88

describe('sortition over 1,000 nodes (stake × reputation weights spread 1 : 2,000)', () => {
  const nodes = makeNodes(1000, 42)
  const JOBS = 300
  const rankings = simulateRankings(nodes, JOBS, 4, 3)

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
