/**
 * Prints the sortition tables of the README: selection share by weight decile over 1,000
 * nodes, and the probability that more than f members of a committee are Byzantine.
 * Run: `pnpm --filter @digicap/committee bench` (JOBS=3000 by default).
 */

import { passesToReach, REPUTATION_INITIAL, reputationAfter, ticketWaves } from '../src/index.ts'
import {
  binomialOverFault,
  byzantineSet,
  makeNodes,
  overFaultRate,
  proportionality,
  simulateRankings,
  simulateWaves,
  sybilOdds,
} from './simulate.ts'

const jobs = Number(process.env.JOBS ?? 3000)
const nodes = makeNodes(1000, 42)
const started = performance.now()
const rankings = simulateRankings(nodes, jobs, 31)
const ms = performance.now() - started
console.log(
  `1,000 nodes, ${jobs} jobs, ranked in ${(ms / 1000).toFixed(1)} s (${((ms * 1000) / (jobs * 1000)).toFixed(1)} µs per ticket)\n`,
)

const p = proportionality(nodes, rankings, 4)
console.log('| weight decile | weight share | seat share (n = 4) | first-seat share |')
console.log('| --- | --- | --- | --- |')
for (const r of p.rows)
  console.log(
    `| ${r.bucket + 1} | ${(100 * r.weightShare).toFixed(2)} % | ${(100 * r.seatShare).toFixed(2)} % | ${(100 * r.leaderShare).toFixed(2)} % |`,
  )
console.log(
  `\nχ² (9 dof) seats ${p.chiSquare.toFixed(1)}, first seats ${p.chiSquareLeader.toFixed(1)}; 0.1 % critical value 27.9\n`,
)

console.log(
  '| Byzantine weight | n = 4 (f = 1) | n = 7 (f = 2) | n = 10 (f = 3) | n = 31 (f = 10) |',
)
console.log('| --- | --- | --- | --- | --- |')
for (const fraction of [0.1, 0.2, 0.3]) {
  const { ids, share } = byzantineSet(nodes, fraction, 7)
  const cells = [1, 2, 3, 10].map(
    (f) =>
      `${(100 * overFaultRate(rankings, ids, f)).toFixed(1)} % (binomial ${(100 * binomialOverFault(share, f)).toFixed(1)} %)`,
  )
  console.log(`| ${(100 * share).toFixed(1)} % | ${cells.join(' | ')} |`)
}

const honestWeight = nodes.reduce((s, n) => s + n.weight, 0n)
const honestStake = nodes.reduce((s, n) => s + n.stake, 0n)
const honestTop = rankings.map((r) => r.slice(0, 4))
console.log(
  `\nSybil (n = 4; stake as a share of the honest nodes' stake; reputation ${REPUTATION_INITIAL} = fresh):\n`,
)
console.log('| Sybil | addresses | weight share | seat share | jobs with ≥ 2 Sybil seats |')
console.log('| --- | --- | --- | --- | --- |')
const cases: [string, number, bigint, bigint][] = [
  ['10 % stake, fresh', 1, honestStake / 10n, BigInt(REPUTATION_INITIAL)],
  ['10 % stake, fresh', 10, honestStake / 10n, BigInt(REPUTATION_INITIAL)],
  ['10 % stake, fresh', 100, honestStake / 10n, BigInt(REPUTATION_INITIAL)],
  ['10 % stake, reputation 500', 1, honestStake / 10n, 500n],
  ['40 % stake, reputation 525', 1, (honestStake * 4n) / 10n, 525n],
  ['40 % stake, reputation 525', 10, (honestStake * 4n) / 10n, 525n],
  ['40 % stake, reputation 525', 100, (honestStake * 4n) / 10n, 525n],
]
for (const [label, identities, stake, reputation] of cases) {
  const o = sybilOdds(honestTop, honestWeight, { identities, stake, reputation })
  console.log(
    `| ${label} | ${identities} | ${(100 * o.weightShare).toFixed(2)} % | ${(100 * o.seatShare).toFixed(2)} % | ${(100 * o.twoSeatRate).toFixed(2)} % |`,
  )
}
console.log(
  `\nReputation curve: ${passesToReach(50)} settled passes from ${REPUTATION_INITIAL} to 50, ${passesToReach(500)} to 500, ${passesToReach(900)} to 900; after 10 passes: ${reputationAfter(10)}.`,
)

// ADR 0065: tickets sent per job when verifiers send in waves and keep beaten tickets.
const waves = ticketWaves(20)
console.log(
  `\nTicket waves (ADR 0065), 1,000 nodes, ${waves} waves (a 20-block window), 300 jobs: tickets sent per job (all 1,000 without waves)\n`,
)
console.log('| n | first job (no reference) | mean after it | p99 | most | committees changed |')
console.log('| --- | --- | --- | --- | --- | --- |')
for (const seats of [4, 7, 31]) {
  const o = simulateWaves(nodes, 300, { seats, waves })
  const later = o.submissions.slice(1).sort((a, b) => a - b)
  const mean = later.reduce((a, b) => a + b, 0) / later.length
  console.log(
    `| ${seats} | ${o.submissions[0]} | ${mean.toFixed(1)} | ${later[Math.floor(0.99 * later.length)]} | ${later.at(-1)} | ${o.mismatches} |`,
  )
}
