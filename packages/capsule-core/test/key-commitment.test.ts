import { describe, expect, it } from 'vitest'
import { checkKeyCommitment, parseCapsuleHeader } from '../src/index.ts'
import { build, DATA_KEY, detBytes, WRONG_KEY } from './fixtures.ts'

describe('checkKeyCommitment', () => {
  const { capsule } = build(detBytes('key commitment plaintext', 100), 4096)
  const parsed = parseCapsuleHeader(capsule)

  it('accepts the data key the header commits to', () => {
    expect(checkKeyCommitment(parsed, DATA_KEY)).toBe(true)
  })

  it('rejects another key, a flipped bit and wrong lengths without throwing', () => {
    expect(checkKeyCommitment(parsed, WRONG_KEY)).toBe(false)
    const flipped = DATA_KEY.slice()
    flipped[0] = (flipped[0] ?? 0) ^ 1
    expect(checkKeyCommitment(parsed, flipped)).toBe(false)
    expect(checkKeyCommitment(parsed, DATA_KEY.subarray(0, 31))).toBe(false)
    expect(checkKeyCommitment(parsed, new Uint8Array(0))).toBe(false)
    expect(checkKeyCommitment(parsed, new Uint8Array(33))).toBe(false)
  })
})
