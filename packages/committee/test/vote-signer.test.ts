/**
 * libsecp256k1Signer signs what capsule-core's noble signer signs, byte for byte (RFC 6979 nonces,
 * low s), for votes of every phase and attestation challenges, over many keys: the signed-vote
 * record (ADR 0093) re-signs a slot's digest after a crash and must get the same bytes.
 */
import {
  addressFromPrivateKey,
  InvalidArgumentError,
  privateKeySigner,
  recoverTypedDataSigner,
} from '@digicap/capsule-core'
import { PBFT_PHASES } from '@digicap/protocol'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import { attestChallengeTypedData, libsecp256k1Signer, voteTypedData } from '../src/index.ts'
import { domain, evidenceHash } from './pbft-fixtures.ts'

const N = secp256k1.Point.Fn.ORDER
const word = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'))

describe('libsecp256k1Signer', () => {
  it('gives the noble signer’s address and signature bytes for 120 keys, every vote phase and a challenge', async () => {
    for (let i = 0; i < 120; i++) {
      const key = secp256k1.utils.randomSecretKey()
      const fast = libsecp256k1Signer(key)
      const noble = privateKeySigner(key)
      expect(fast.address).toBe(addressFromPrivateKey(key))
      const jobId = keccak_256(Uint8Array.of(i))
      const phase = PBFT_PHASES[i % PBFT_PHASES.length] as (typeof PBFT_PHASES)[number]
      const vote = voteTypedData(domain, {
        phase,
        jobId,
        view: BigInt(i),
        preparedView: phase === 'view-change' ? BigInt(i) : 0n,
        verdict: i % 8,
        evidenceHash,
      })
      const challenge = attestChallengeTypedData(domain, {
        jobId,
        blockHash: keccak_256(jobId),
        seq: BigInt(i),
      })
      for (const typedData of [vote, challenge]) {
        const signature = await fast.signTypedData(typedData)
        expect(signature).toBe(await noble.signTypedData(typedData))
        expect(recoverTypedDataSigner(typedData, Buffer.from(signature.slice(2), 'hex'))).toBe(
          fast.address,
        )
      }
    }
  })

  it('copies the key: zeroing the caller’s array does not change what it signs', async () => {
    const key = secp256k1.utils.randomSecretKey()
    const before = libsecp256k1Signer(key)
    const typed = attestChallengeTypedData(domain, {
      jobId: keccak_256(key),
      blockHash: keccak_256(key),
      seq: 1n,
    })
    const expected = await privateKeySigner(key).signTypedData(typed)
    key.fill(0)
    expect(await before.signTypedData(typed)).toBe(expected)
  })

  it('refuses a key that is not one: zero, the group order, past it, short, not bytes', () => {
    for (const bad of [word(0n), word(N), word(N + 1n), new Uint8Array(31), 'ab' as never]) {
      expect(() => libsecp256k1Signer(bad)).toThrow(InvalidArgumentError)
    }
  })
})
