import { InvalidArgumentError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { pbftCommittee } from '../src/index.js'

/** n distinct members; the addresses and peer ids only need to be well-formed and unique. */
function members(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    address: `0x${(i + 1).toString(16).padStart(40, '0')}` as const,
    peerId: `peer-${i}`,
  }))
}

describe('pbftCommittee: only n = 3f + 1', () => {
  it('accepts 4, 7, …, 64 with a quorum of 2f + 1, whose any two quorums share f + 1 members', () => {
    for (let n = 4; n <= 64; n += 3) {
      const c = pbftCommittee(members(n))
      expect(c.f).toBe((n - 1) / 3)
      expect(c.quorum).toBe(2 * c.f + 1)
      // Safety: two quorums overlap in at least one honest member.
      expect(2 * c.quorum - n).toBeGreaterThanOrEqual(c.f + 1)
    }
  })

  // With n = 5, f = 1 and a quorum of 3, two quorums may share only the faulty member:
  // two conflicting certificates in one view. The contract's CommitteeSortition refuses such
  // sizes too (seats % 3 == 1).
  it('refuses every other size with a typed error', () => {
    for (const n of [5, 6, 8, 9, 11, 12, 30, 32, 63]) {
      expect(() => pbftCommittee(members(n)), `n = ${n}`).toThrow(InvalidArgumentError)
    }
    expect(() => pbftCommittee(members(67))).toThrow(InvalidArgumentError)
    expect(() => pbftCommittee(members(3))).toThrow(InvalidArgumentError)
  })
})
