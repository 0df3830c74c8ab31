/**
 * Sortition simulation shared by `bench/sortition.ts` (prints the README tables) and
 * `test/sortition-simulation.test.ts` (asserts them with stated tolerances).
 *
 * A node's VRF output for a job is modelled as sha256(job seed ‖ node index): a VRF output is
 * pseudorandom to anyone without the key, and proving 1,000 × thousands of real proofs would
 * only measure the VRF (test/sortition.test.ts runs the real pipeline, proofs included, on
 * fewer nodes). Everything after the output — score, ranking, committee — is the package's code.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import {
  canBeSeated,
  committeeSize,
  cutoffReference,
  type RankedTicket,
  rankTickets,
  selectionWeight,
  sortitionScore,
  TICKET_PASSES_AHEAD,
  type Ticket,
  ticketWave,
  weightAhead,
} from '../src/index.ts'

export interface SimNode {
  readonly id: string
  readonly stake: bigint
  readonly reputation: bigint
  readonly weight: bigint
}

/** A deterministic PRNG (xorshift32) so a simulation is reproducible from its seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

/** n nodes with stake 1–100 (× 10¹⁶ wei) and reputation 50–1000, drawn from `seed`. */
export function makeNodes(count: number, seed: number): SimNode[] {
  const rand = prng(seed)
  return Array.from({ length: count }, (_, i) => {
    const stake = BigInt(1 + Math.floor(rand() * 100)) * 10n ** 16n
    const reputation = BigInt(50 + Math.floor(rand() * 951))
    return { id: `node-${i}`, stake, reputation, weight: selectionWeight(stake, reputation) }
  })
}

function outputFor(job: number, node: number, salt: number): Uint8Array {
  const msg = new Uint8Array(12)
  const view = new DataView(msg.buffer)
  view.setUint32(0, salt)
  view.setUint32(4, job)
  view.setUint32(8, node)
  return sha256(msg)
}

/** The top `depth` tickets of each of `jobs` jobs, in rank order (committee of size n = first n). */
export function simulateRankings(
  nodes: readonly SimNode[],
  jobs: number,
  depth: number,
  salt = 1,
): RankedTicket[][] {
  const out: RankedTicket[][] = []
  for (let job = 0; job < jobs; job++) {
    const tickets: Ticket[] = nodes.map((n, i) => ({
      id: n.id,
      weight: n.weight,
      beta: outputFor(job, i, salt),
    }))
    out.push(rankTickets(tickets).slice(0, depth))
  }
  return out
}

export interface ProportionalityRow {
  readonly bucket: number
  readonly weightShare: number
  readonly seatShare: number
  readonly leaderShare: number
}

/**
 * Groups nodes into `buckets` weight deciles and compares each bucket's share of seats (and
 * of first seats) with its share of weight. `chiSquare` is Pearson's statistic over the buckets
 * (buckets − 1 degrees of freedom) for seats, `chiSquareLeader` for first seats.
 */
export function proportionality(
  nodes: readonly SimNode[],
  rankings: readonly RankedTicket[][],
  seats: number,
  buckets = 10,
): { rows: ProportionalityRow[]; chiSquare: number; chiSquareLeader: number } {
  const sorted = [...nodes].sort((a, b) => (a.weight < b.weight ? -1 : a.weight > b.weight ? 1 : 0))
  const bucketOf = new Map<string, number>()
  sorted.forEach((n, i) => {
    bucketOf.set(n.id, Math.floor((i * buckets) / sorted.length))
  })
  const total = nodes.reduce((s, n) => s + n.weight, 0n)
  const weight = new Array<bigint>(buckets).fill(0n)
  for (const n of nodes) weight[bucketOf.get(n.id)!]! += n.weight
  const seatCount = new Array<number>(buckets).fill(0)
  const leaderCount = new Array<number>(buckets).fill(0)
  for (const r of rankings) {
    for (const t of r.slice(0, seats)) seatCount[bucketOf.get(t.id)!]!++
    leaderCount[bucketOf.get(r[0]!.id)!]!++
  }
  const allSeats = rankings.length * seats
  let chiSquare = 0
  let chiSquareLeader = 0
  const rows = weight.map((w, b) => {
    const share = Number((w * 1_000_000n) / total) / 1_000_000
    const expSeats = share * allSeats
    const expLeaders = share * rankings.length
    chiSquare += (seatCount[b]! - expSeats) ** 2 / expSeats
    chiSquareLeader += (leaderCount[b]! - expLeaders) ** 2 / expLeaders
    return {
      bucket: b,
      weightShare: share,
      seatShare: seatCount[b]! / allSeats,
      leaderShare: leaderCount[b]! / rankings.length,
    }
  })
  return { rows, chiSquare, chiSquareLeader }
}

/** Marks nodes Byzantine, in a random order, until they hold at least `fraction` of the weight. */
export function byzantineSet(
  nodes: readonly SimNode[],
  fraction: number,
  seed: number,
): { ids: Set<string>; share: number } {
  const rand = prng(seed)
  const order = nodes.map((n) => ({ n, r: rand() })).sort((a, b) => a.r - b.r)
  const total = nodes.reduce((s, n) => s + n.weight, 0n)
  const ids = new Set<string>()
  let held = 0n
  for (const { n } of order) {
    if (Number((held * 1_000_000n) / total) / 1_000_000 >= fraction) break
    ids.add(n.id)
    held += n.weight
  }
  return { ids, share: Number((held * 1_000_000n) / total) / 1_000_000 }
}

/** Share of committees of size n = 3f + 1 with more than f Byzantine members. */
export function overFaultRate(
  rankings: readonly RankedTicket[][],
  byzantine: ReadonlySet<string>,
  faults: number,
): number {
  const n = committeeSize(faults)
  let bad = 0
  for (const r of rankings)
    if (r.slice(0, n).filter((t) => byzantine.has(t.id)).length > faults) bad++
  return bad / rankings.length
}

/** P(more than f of n = 3f + 1 are Byzantine) when each seat is Byzantine with probability p. */
export function binomialOverFault(p: number, faults: number): number {
  const n = committeeSize(faults)
  let atMostF = 0
  let choose = 1
  for (let j = 0; j <= faults; j++) {
    if (j > 0) choose = (choose * (n - j + 1)) / j
    atMostF += choose * p ** j * (1 - p) ** (n - j)
  }
  return 1 - atMostF
}

/** A Sybil: `identities` addresses sharing `stake` equally, each at `reputation`. */
export interface SybilSpec {
  readonly identities: number
  readonly stake: bigint
  readonly reputation: bigint
}

/**
 * Adds a Sybil's tickets to every job and draws committees of 4 (the honest nodes' top 4 per
 * job is enough: nobody below it can be seated once more tickets join). Returns the Sybil's
 * share of the weight, its share of seats, and how often it holds 2 or more of the 4 seats.
 */
export function sybilOdds(
  honestTop: readonly RankedTicket[][],
  honestWeight: bigint,
  sybil: SybilSpec,
  salt = 99,
): { weightShare: number; seatShare: number; twoSeatRate: number } {
  const weight = selectionWeight(sybil.stake / BigInt(sybil.identities), sybil.reputation)
  const total = weight * BigInt(sybil.identities)
  let seats = 0
  let twoSeats = 0
  honestTop.forEach((top, job) => {
    const tickets: Ticket[] = [...top]
    for (let i = 0; i < sybil.identities; i++)
      tickets.push({ id: `sybil-${i}`, weight, beta: outputFor(job, i, salt) })
    const held = rankTickets(tickets)
      .slice(0, 4)
      .filter((t) => t.id.startsWith('sybil-')).length
    seats += held
    if (held >= 2) twoSeats++
  })
  return {
    weightShare: Number((total * 1_000_000n) / (honestWeight + total)) / 1_000_000,
    seatShare: seats / (4 * honestTop.length),
    twoSeatRate: twoSeats / honestTop.length,
  }
}

/** Options of {@link simulateWaves}. */
export interface WaveSimulation {
  /** Committee size n. */
  readonly seats: number
  /** Waves in the window (`ticketWaves(window)`). */
  readonly waves: number
  /** Full committees' cut-offs a node remembers (the reference is their median). Default 16. */
  readonly remember?: number
  /** Multiplies every node's stake from this job on (a population that grew or shrank). */
  readonly weightChange?: {
    readonly atJob: number
    readonly factor: bigint
    readonly divisor: bigint
  }
  /** Passes of reputation a node allows for before it keeps a ticket (`TICKET_PASSES_AHEAD`). */
  readonly passesAhead?: number
  readonly salt?: number
}

/** What {@link simulateWaves} saw, per job. */
export interface WaveOutcome {
  /** Tickets sent (each one a proof checked on chain). */
  readonly submissions: number[]
  /** Jobs whose seated committee differs from the one every ticket would have made. */
  readonly mismatches: number
  /** The latest wave a seated ticket went in, per job. */
  readonly lastSeatedWave: number[]
}

/**
 * Runs ADR 0065's ticket waves (`waitForWave`'s rules) over `jobs` jobs: every node scores its
 * ticket, picks its wave from the median cut-off of the last full committees; in its wave it sends
 * unless the seats as the earlier waves left them are full of scores at or below its best score
 * (its weight after `passesAhead` more passes). A wave's tickets land together, inserted the way
 * `CommitteeSortition._insert` does (sorted, a tie keeps the earlier seat). The committee is
 * compared with the n lowest scores of all tickets (what sending every ticket gives).
 */
export function simulateWaves(
  nodes: readonly SimNode[],
  jobs: number,
  options: WaveSimulation,
): WaveOutcome {
  const remember = options.remember ?? 16
  const passes = options.passesAhead ?? TICKET_PASSES_AHEAD
  const recent: bigint[] = []
  const submissions: number[] = []
  const lastSeatedWave: number[] = []
  let mismatches = 0
  for (let job = 0; job < jobs; job++) {
    const change = options.weightChange
    const stakeOf = (n: SimNode) =>
      change !== undefined && job >= change.atJob
        ? (n.stake * change.factor) / change.divisor
        : n.stake
    const all = nodes.map((n, i) => {
      const beta = outputFor(job, i, options.salt ?? 3)
      const stake = stakeOf(n)
      const weight = selectionWeight(stake, n.reputation)
      return {
        id: n.id,
        beta,
        weight,
        score: sortitionScore(beta, weight),
        best: sortitionScore(beta, weightAhead({ stake, reputation: n.reputation }, passes)),
      }
    })
    const reference = cutoffReference(recent)
    const waveOf = new Map(
      all.map((t) => [t.id, ticketWave(t.score, reference, { waves: options.waves })]),
    )
    const seats: { id: string; score: bigint; wave: number }[] = []
    let sent = 0
    for (let wave = 0; wave < options.waves; wave++) {
      const cutoff = { full: seats.length === options.seats, score: seats.at(-1)?.score ?? 0n }
      const going = all.filter((t) => waveOf.get(t.id) === wave && canBeSeated(t.best, cutoff))
      sent += going.length
      for (const t of going) {
        if (seats.length === options.seats) {
          if (t.score >= (seats.at(-1) as { score: bigint }).score) continue
          seats.pop()
        }
        seats.push({ id: t.id, score: t.score, wave })
        seats.sort((a, b) => (a.score < b.score ? -1 : a.score > b.score ? 1 : 0))
      }
    }
    submissions.push(sent)
    lastSeatedWave.push(Math.max(...seats.map((x) => x.wave)))
    const expected = rankTickets(all.map(({ id, beta, weight }) => ({ id, beta, weight })))
      .slice(0, options.seats)
      .map((t) => t.id)
    if (seats.map((x) => x.id).join() !== expected.join()) mismatches++
    if (seats.length === options.seats) {
      recent.push((seats.at(-1) as { score: bigint }).score)
      if (recent.length > remember) recent.shift()
    }
  }
  return { submissions, mismatches, lastSeatedWave }
}
