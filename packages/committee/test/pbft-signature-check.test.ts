/**
 * The cheaper vote checks give the answer of a plain recovery (capsule-core's, noble) in every
 * case: libsecp256k1's recovery in WebAssembly (ADR 0098), the answered-pair cache, and the
 * fixed-layout digest. Each case below is one a wrong shortcut would get wrong: a flipped v (the
 * other R), a high s, out-of-range r or s, a signature over another digest, another member's
 * key, garbage, and many random keys.
 */
import {
  type Address,
  addressFromPrivateKey,
  CapsuleSignatureError,
  hashTypedData,
  InvalidArgumentError,
  recoverDigestSigner,
  signDigest,
} from '@digicap/capsule-core'
import { PBFT_PHASES } from '@digicap/protocol'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import { signVote, voteDigest, voteTypedData } from '../src/index.ts'
import { nobleFallbacks, recoverSigner } from '../src/pbft/signature-check.ts'
import { domain, evidenceHash, jobId, signers } from './pbft-fixtures.ts'

const N = secp256k1.Point.Fn.ORDER
const keys = Array.from({ length: 3 }, (_, i) =>
  keccak_256(new TextEncoder().encode(`sig-check-${i}`)),
)
const addressOf = (i: number) => addressFromPrivateKey(keys[i] as Uint8Array)
let counter = 0
/** A digest never used before (the answered-pair cache cannot hold it). */
function digestOf(label: string): Uint8Array {
  return keccak_256(new TextEncoder().encode(`${label}-${counter++}`))
}

/** The plain answer: an address, or the error class and message it throws. */
function plain(digest: Uint8Array, signature: Uint8Array): Address | string {
  try {
    return recoverDigestSigner(digest, signature)
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`
  }
}
function fast(digest: Uint8Array, signature: Uint8Array): Address | string {
  try {
    return recoverSigner(digest, signature)
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`
  }
}

const word = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'))

describe('recoverSigner: the WebAssembly recovery answers as noble’s', () => {
  const members = [0, 1, 2].map(addressOf)

  it('valid signatures: the same signer, for the members and for 300 random keys', () => {
    for (let round = 0; round < 12; round++) {
      for (const [i, key] of keys.entries()) {
        const d = digestOf('valid')
        expect(fast(d, signDigest(d, key))).toBe(members[i])
      }
    }
    const before = nobleFallbacks()
    for (let i = 0; i < 300; i++) {
      const key = secp256k1.utils.randomSecretKey()
      const d = digestOf('random')
      const sig = signDigest(d, key)
      expect(fast(d, sig)).toBe(addressFromPrivateKey(key))
      expect(fast(d, sig)).toBe(plain(d, sig))
    }
    // Every one was answered by libsecp256k1: a recovery that quietly fell back to noble each
    // time would give the same answers.
    expect(nobleFallbacks() - before).toBe(0)
  })

  it('a flipped v, a high s, a signature over another digest: never the expected member', () => {
    for (let round = 0; round < 8; round++) {
      const d = digestOf('bent')
      const sig = signDigest(d, keys[0] as Uint8Array)
      const flipped = sig.slice()
      flipped[64] = flipped[64] === 27 ? 28 : 27
      const answer = fast(d, flipped)
      expect(answer).toBe(plain(d, flipped))
      expect(answer).not.toBe(members[0])
      // (r, n − s, other v) recovers the same key on a lax verifier; both refuse it (high s).
      const s = BigInt(`0x${Buffer.from(sig.subarray(32, 64)).toString('hex')}`)
      const high = sig.slice()
      high.set(word(N - s), 32)
      high[64] = flipped[64] as number
      expect(fast(d, high)).toBe(plain(d, high))
      expect(fast(d, high)).toMatch(/^CapsuleSignatureError/)
      const other = digestOf('other')
      expect(fast(other, sig)).toBe(plain(other, sig))
      expect(fast(other, sig)).not.toBe(members[0])
    }
  })

  it('out-of-range r and s, a bad v, a wrong length, garbage: the same refusal or address', () => {
    const d = digestOf('range')
    const sig = signDigest(d, keys[1] as Uint8Array)
    const bent = (at: number, bytes: Uint8Array) => {
      const out = sig.slice()
      out.set(bytes, at)
      return out
    }
    const cases = [
      bent(0, word(0n)),
      bent(0, word(N)),
      bent(0, word(N + 5n)),
      bent(32, word(0n)),
      bent(32, word(N)),
      bent(64, Uint8Array.of(29)),
      bent(64, Uint8Array.of(1)),
      sig.subarray(0, 64),
      new Uint8Array(65),
    ]
    for (let i = 0; i < 64; i++) {
      const garbage = new Uint8Array(65)
      crypto.getRandomValues(garbage)
      garbage[64] = 27 + (i % 2)
      cases.push(garbage)
    }
    for (const c of cases) {
      const answer = fast(d, c)
      expect(answer).toBe(plain(d, c))
      expect(answer).not.toBe(members[1])
    }
    expect(() => recoverSigner(d, sig.subarray(0, 64))).toThrow(CapsuleSignatureError)
  })
})

describe('voteDigest: the fixed layout is the EIP-712 digest', () => {
  it('equals hashTypedData(voteTypedData(…)) for every phase, edge views and verdicts', async () => {
    const views = [0n, 1n, 255n, 1n << 32n, (1n << 64n) - 1n]
    for (const phase of PBFT_PHASES) {
      for (const view of views) {
        for (const verdict of [0, 5, 7]) {
          const vote = {
            phase,
            jobId,
            view,
            preparedView: phase === 'view-change' ? view : 0n,
            verdict,
            evidenceHash,
          }
          expect(voteDigest(domain, vote)).toEqual(hashTypedData(voteTypedData(domain, vote)))
        }
      }
    }
    // The signature a member makes is over that digest.
    const key = signers(1)[0]
    if (key === undefined) throw new Error('no key')
    const vote = {
      phase: 'commit' as const,
      jobId,
      view: 3n,
      preparedView: 0n,
      verdict: 7,
      evidenceHash,
    }
    const signed = await signVote(key, domain, vote)
    expect(recoverDigestSigner(hashTypedData(voteTypedData(domain, vote)), signed.signature)).toBe(
      key.address,
    )
  })

  it('refuses what the generic encoder refuses: a view past uint64, a short job id, verdict 8', () => {
    const base = {
      phase: 'prepare' as const,
      jobId,
      view: 0n,
      preparedView: 0n,
      verdict: 7,
      evidenceHash,
    }
    for (const bad of [
      { ...base, view: 1n << 64n },
      { ...base, view: -1n },
      { ...base, phase: 'view-change' as const, view: 2n, preparedView: 1n << 64n },
      { ...base, jobId: jobId.subarray(0, 31) },
      { ...base, verdict: 8 },
    ]) {
      expect(() => voteDigest(domain, bad)).toThrow(InvalidArgumentError)
      expect(() => hashTypedData(voteTypedData(domain, bad))).toThrow(InvalidArgumentError)
    }
  })
})
