/**
 * A member restarted within one block never signs the same attestation challenge twice (the
 * executor could otherwise answer its new challenge with the quote it took before the restart).
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { attestChallengeNonce, pbftDomain, signAttestChallenge } from '@digicap/committee'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import { challengeCounter } from '../src/node/verifier/challenge-counter.ts'

const signer = privateKeySigner(keccak_256(new TextEncoder().encode('member-0')))
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const jobId = keccak_256(new TextEncoder().encode('job-1'))
const blockHash = keccak_256(new TextEncoder().encode('block-1'))
const nonce = async (seq: bigint) =>
  Buffer.from(
    attestChallengeNonce(
      (await signAttestChallenge(signer, domain, { jobId, blockHash, seq })).signature,
    ),
  )

describe('challengeCounter', () => {
  it('two lives of one member, same job and block: their challenges never share a nonce', async () => {
    const seen = new Set<string>()
    for (let life = 0; life < 50; life++) {
      const next = challengeCounter()
      for (let i = 0; i < 3; i++) {
        const hex = (await nonce(next())).toString('hex')
        expect(seen.has(hex)).toBe(false)
        seen.add(hex)
      }
    }
    expect(seen.size).toBe(150)
  })

  it('counts up by one from a start below 2^63 (a uint64 for 2^63 more challenges)', () => {
    const next = challengeCounter(() => new Uint8Array(8).fill(0xff))
    const first = next()
    expect(first).toBe((1n << 63n) - 1n)
    expect(next()).toBe(first + 1n)
    const zero = challengeCounter(() => new Uint8Array(8))
    expect([zero(), zero(), zero()]).toEqual([0n, 1n, 2n])
  })
})
