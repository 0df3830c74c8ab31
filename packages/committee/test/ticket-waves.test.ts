import { describe, expect, it } from 'vitest'
import {
  canBeSeated,
  cutoffHistory,
  cutoffReference,
  MAX_TICKET_WAVES,
  MIN_SORTITION_WEIGHT,
  SortitionError,
  sortitionScore,
  TICKET_PASSES_AHEAD,
  type TicketChain,
  ticketWave,
  ticketWaves,
  waitForWave,
} from '../src/index.ts'

describe('canBeSeated (ADR 0065)', () => {
  it('takes any ticket while a seat is free', () => {
    expect(canBeSeated(10n ** 30n, { full: false, score: 0n })).toBe(true)
  })
  it('takes only a score below a full committee’s last seat: a tie is not seated (the contract keeps the earlier)', () => {
    expect(canBeSeated(99n, { full: true, score: 100n })).toBe(true)
    expect(canBeSeated(100n, { full: true, score: 100n })).toBe(false)
    expect(canBeSeated(101n, { full: true, score: 100n })).toBe(false)
  })
})

describe('cutoffReference', () => {
  it('is undefined with no closed committee, else the (lower) median, leaving its input alone', () => {
    expect(cutoffReference([])).toBeUndefined()
    expect(cutoffReference([7n])).toBe(7n)
    const recent = [9n, 1n, 5n, 3n]
    expect(cutoffReference(recent)).toBe(3n)
    expect(recent).toEqual([9n, 1n, 5n, 3n])
    expect(cutoffReference([9n, 1n, 5n])).toBe(5n)
    // One odd job does not move it far.
    expect(cutoffReference([100n, 101n, 99n, 10n ** 40n, 102n])).toBe(101n)
  })
})

describe('ticketWaves', () => {
  it('one block a wave from the window’s second block, at most 8, the last landing two blocks before the window closes', () => {
    expect([1, 2, 3, 4, 5, 8, 11, 19, 20, 256].map(ticketWaves)).toEqual([
      1, 1, 1, 1, 2, 5, 8, 16, 16, 16,
    ])
    expect(MAX_TICKET_WAVES).toBe(16)
  })
  it('refuses a window that is not a positive integer, with a typed error', () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => ticketWaves(bad)).toThrowError(
        expect.objectContaining({ name: 'SortitionError', reason: 'window' }),
      )
  })
})

describe('ticketWave', () => {
  const waves = 8
  it('sends at once without a reference (a fresh node) or with a useless one', () => {
    expect(ticketWave(10n ** 40n, undefined, { waves })).toBe(0)
    expect(ticketWave(10n ** 40n, 0n, { waves })).toBe(0)
  })
  it('doubles the bound each wave from margin × reference', () => {
    const ref = 1_000n
    expect(ticketWave(1n, ref, { waves })).toBe(0)
    expect(ticketWave(2_000n, ref, { waves })).toBe(0)
    expect(ticketWave(2_001n, ref, { waves })).toBe(1)
    expect(ticketWave(4_000n, ref, { waves })).toBe(1)
    expect(ticketWave(4_001n, ref, { waves })).toBe(2)
    expect(ticketWave(3_000n, ref, { waves, margin: 3 })).toBe(0)
    expect(ticketWave(3_001n, ref, { waves, margin: 3 })).toBe(1)
  })
  it('never goes past the last wave, however bad the ticket (it must still land in the window)', () => {
    expect(ticketWave(10n ** 60n, 1n, { waves })).toBe(waves - 1)
    expect(ticketWave(10n ** 60n, 1n, { waves: 1 })).toBe(0)
  })
  it('refuses waves or a margin that are not positive integers', () => {
    for (const options of [
      { waves: 0 },
      { waves: 2.5 },
      { waves: 4, margin: 0 },
      { waves: 4, margin: 1.5 },
    ])
      expect(() => ticketWave(1n, 1n, options)).toThrow(SortitionError)
  })
})

/**
 * `waitForWave` and `cutoffHistory` when the chain's reads fail or answer oddly: the faults are
 * injected through a scripted `TicketChain`. Their work against the real contracts is in
 * committee-onchain.test.ts.
 */
describe('waitForWave and cutoffHistory under failing reads (fault injection)', () => {
  const beta = new Uint8Array(32).fill(0x40)
  const stake = 10n ** 16n
  const reputation = 100n
  const score = sortitionScore(beta, stake * reputation)
  const SELF = '0x00000000000000000000000000000000000000aa'
  const down = async (): Promise<never> => {
    throw new Error('RPC down')
  }
  type Cutoff = { full: boolean; score: bigint; closed: boolean }
  const chainOf = (over: Partial<TicketChain> = {}): TicketChain => ({
    blockNumber: async () => 101,
    standing: async () => ({ stake, reputation }),
    cutoff: async () => ({ full: true, score: 1n, closed: false }),
    seats: async () => ({ members: ['0x01'] }),
    ...over,
  })
  /** A history whose reference is `ref` (one closed job with that cut-off). */
  async function historyAt(ref: bigint) {
    const h = cutoffHistory({ cutoff: async () => ({ full: true, score: ref, closed: true }) })
    h.watch(new Uint8Array(32).fill(1), 50)
    await h.reference(101)
    return h
  }
  const plan = async (chain: TicketChain, ref: bigint | undefined, waited: number[] = []) =>
    waitForWave({
      chain,
      self: SELF,
      jobId: new Uint8Array(32).fill(2),
      beta,
      grantBlock: 100,
      lastBlock: 120,
      history: ref === undefined ? cutoffHistory(chain) : await historyAt(ref),
      untilBlock: async (b) => {
        waited.push(b)
      },
      passesAhead: 0,
    })

  it('its standing unreadable: sends at once', async () => {
    expect(await plan(chainOf({ standing: down }), score / 5n)).toEqual({
      send: true,
      wave: 0,
      because: 'unread',
    })
  })
  it('the seats unreadable at its wave: sends then', async () => {
    const waited: number[] = []
    expect(await plan(chainOf({ cutoff: down }), score / 5n, waited)).toEqual({
      send: true,
      wave: 2,
      because: 'unread',
    })
    expect(waited).toEqual([102])
  })
  it('its stake gone by its wave (not eligible then): sends, so the chain says why', async () => {
    let reads = 0
    const shrinking = chainOf({
      standing: async () => (reads++ === 0 ? { stake, reputation } : { stake: 0n, reputation }),
    })
    expect(await plan(shrinking, score / 5n)).toEqual({
      send: true,
      wave: 2,
      because: 'ineligible',
    })
  })
  it('waits for grant + wave (head past it: grant + 1 + wave), and keeps the ticket when beaten', async () => {
    const waited: number[] = []
    const beaten = chainOf({ cutoff: async () => ({ full: true, score, closed: false }) })
    expect(await plan(beaten, score / 5n, waited)).toEqual({
      send: false,
      wave: 2,
      cutoff: score,
      score,
    })
    expect(waited).toEqual([102])
  })
  it('not eligible (stake × reputation under the contract’s 2⁴¹) or the window closed: sends, so the chain says why', async () => {
    const standing = (stake: bigint) =>
      chainOf({ standing: async () => ({ stake, reputation: 1n }) })
    expect(await plan(standing(1n), 1n)).toEqual({ send: true, wave: 0, because: 'ineligible' })
    expect(await plan(standing(MIN_SORTITION_WEIGHT - 1n), 1n)).toEqual({
      send: true,
      wave: 0,
      because: 'ineligible',
    })
    // at the floor itself the node is eligible: its ticket is planned (here: kept, beaten)
    expect(await plan(standing(MIN_SORTITION_WEIGHT), 1n)).toMatchObject({ send: false })
    const closed = chainOf({ cutoff: async () => ({ full: true, score: 1n, closed: true }) })
    expect(await plan(closed, undefined)).toEqual({ send: true, wave: 0, because: 'closed' })
  })
  it('a young node keeps a ticket only if beaten at the reputation 4 passes would give', async () => {
    const young = chainOf({
      standing: async () => ({ stake, reputation: 1n }),
      cutoff: async () => ({ full: true, score: sortitionScore(beta, stake * 3n), closed: false }),
    })
    const at = (passesAhead: number) =>
      waitForWave({
        chain: young,
        self: SELF,
        jobId: new Uint8Array(32).fill(2),
        beta,
        grantBlock: 100,
        lastBlock: 120,
        history: cutoffHistory(young),
        untilBlock: async () => {},
        passesAhead,
      })
    // at reputation 1 it is beaten; after 4 passes (reputation 5) it would beat the last seat
    expect((await at(0)).send).toBe(false)
    expect((await at(TICKET_PASSES_AHEAD)).send).toBe(true)
  })
  it('cutoffHistory: a failed read, or a job not closed yet, is asked again once the head moves on', async () => {
    let answer: Cutoff | undefined
    let reads = 0
    const h = cutoffHistory({
      cutoff: async () => {
        reads++
        if (answer === undefined) throw new Error('RPC down')
        return answer
      },
    })
    h.watch(new Uint8Array(32).fill(3), 110)
    expect(await h.reference(110)).toBeUndefined() // not due: head is not past 110
    expect(reads).toBe(0)
    expect(await h.reference(111)).toBeUndefined() // read fails
    expect(await h.reference(111)).toBeUndefined() // not asked again at the same head
    expect(reads).toBe(1)
    answer = { full: true, score: 9n, closed: false }
    expect(await h.reference(112)).toBeUndefined() // open still
    answer = { full: true, score: 9n, closed: true }
    expect(await h.reference(113)).toBe(9n)
    expect(reads).toBe(3)
    expect(await h.reference(200)).toBe(9n)
    expect(reads).toBe(3)
  })
  it('cutoffHistory: a hung read delays a reference by readWaitMs only; an odd answer is asked again, never poisons it', async () => {
    let hang = true
    let odd = true
    const h = cutoffHistory(
      {
        cutoff: (jobId) =>
          jobId[0] === 1
            ? hang
              ? new Promise(() => {})
              : Promise.resolve({ full: true, score: 5n, closed: true })
            : Promise.resolve(
                odd ? (null as unknown as Cutoff) : { full: true, score: 7n, closed: true },
              ),
      },
      { readWaitMs: 50 },
    )
    h.watch(new Uint8Array(32).fill(1), 10)
    h.watch(new Uint8Array(32).fill(2), 10)
    const t0 = performance.now()
    expect(await h.reference(11)).toBeUndefined()
    expect(performance.now() - t0).toBeLessThan(1000)
    // the hung read is still in flight: the next call waits for it again, at most readWaitMs
    expect(await h.reference(12)).toBeUndefined()
    odd = false
    expect(await h.reference(13)).toBe(7n)
    hang = false
    // a read that never settles is never asked again; the job is lost to the history, not the node
    expect(await h.reference(14)).toBe(7n)
  })
  it('cutoffHistory: a job watched first without its last block (at start) learns it from a later watch', async () => {
    let reads = 0
    const h = cutoffHistory({
      cutoff: async () => {
        reads++
        return { full: true, score: 1n, closed: false }
      },
    })
    const job = new Uint8Array(32).fill(4)
    h.watch(job)
    h.watch(job, 150)
    await h.reference(120)
    expect(reads).toBe(0)
    await h.reference(151)
    expect(reads).toBe(1)
  })
  it('cutoffHistory keeps 16 cut-offs and waits on at most 64 jobs', async () => {
    let n = 0
    const h = cutoffHistory({
      cutoff: async () => ({ full: true, score: BigInt(1000 + n++), closed: true }),
    })
    for (let i = 0; i < 40; i++) {
      h.watch(
        new Uint8Array(32).fill(0).map((_, k) => (k === 0 ? i : 7)),
        10,
      )
      await h.reference(11)
    }
    expect(h.size).toBe(16)
    expect(await h.reference(11)).toBe(1031n) // median of 1024 … 1039
    let asked = 0
    const slow = cutoffHistory({
      cutoff: async () => {
        asked++
        return { full: false, score: 0n, closed: false }
      },
    })
    for (let i = 0; i < 100; i++) slow.watch(new Uint8Array(32).fill(i), 10)
    await slow.reference(11)
    expect(asked).toBe(64)
  })
})
