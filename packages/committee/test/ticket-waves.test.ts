import { describe, expect, it } from 'vitest'
import {
  canBeSeated,
  cutoffReference,
  MAX_TICKET_WAVES,
  SortitionError,
  ticketWave,
  ticketWaves,
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
  it('one block a wave, at most 8, the last two blocks of the window left for the last wave to land', () => {
    expect([1, 2, 3, 4, 5, 8, 10, 20, 256].map(ticketWaves)).toEqual([1, 1, 1, 2, 3, 6, 8, 8, 8])
    expect(MAX_TICKET_WAVES).toBe(8)
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
