/**
 * The signed attestation challenge (ADR 0095, SPEC-ATTEST §6): the digest this package signs is
 * the one the protocol's `forward` vector names (computed there by capsule-core's generic
 * EIP-712 encoder) and ethers' `TypedDataEncoder`; the signature recovers to the vector's signer
 * and the quote nonce is its keccak-256. A challenge signature is no vote: no PBFT primary type
 * shares its type hash.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { privateKeySigner, toHex } from '@digicap/capsule-core'
import { decodeAttestForward, decodeFrame } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { TypedDataEncoder } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  ATTEST_CHALLENGE_TYPES,
  attestChallengeDigest,
  attestChallengeNonce,
  attestChallengeTypedData,
  PBFT_TYPES,
  pbftDomain,
  recoverAttestChallenger,
  signAttestChallenge,
} from '../src/index.ts'

const root = dirname(createRequire(import.meta.url).resolve('@digicap/protocol/package.json'))
const vector = readFileSync(join(root, 'test/attest-vectors/forward.txt'), 'utf8')
const [head = '', body = ''] = vector.split('\n\n')
const header = Object.fromEntries(
  head.split('\n').map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
)
const frame = Uint8Array.from(Buffer.from(body.replace(/\s+/g, ''), 'hex'))
const forward = decodeAttestForward(decodeFrame(frame, 65536))
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const key = keccak_256(new TextEncoder().encode('member-0'))

describe('AttestChallenge', () => {
  it('digests as the protocol vector and ethers say; signs and recovers to its signer; nonce = keccak(signature)', async () => {
    const fields = { jobId: forward.jobId, blockHash: forward.blockHash, seq: forward.seq }
    const digest = attestChallengeDigest(domain, fields)
    expect(toHex(digest)).toBe(header.digest)
    const typed = attestChallengeTypedData(domain, fields)
    expect(
      TypedDataEncoder.hash(typed.domain as never, typed.types as never, typed.message as never),
    ).toBe(header.digest)
    const signed = await signAttestChallenge(
      privateKeySigner(toHex(key) as `0x${string}`),
      domain,
      fields,
    )
    expect(toHex(signed.signature)).toBe(toHex(forward.challengeSignature))
    expect(recoverAttestChallenger(domain, signed)).toBe(header.signer)
    expect(toHex(attestChallengeNonce(signed.signature))).toBe(header.nonce)
  })

  it('is no PBFT vote type, and another domain recovers another address', async () => {
    expect(Object.keys(ATTEST_CHALLENGE_TYPES)).toEqual(['AttestChallenge'])
    expect(Object.keys(PBFT_TYPES)).not.toContain('AttestChallenge')
    const signed = { ...forward, signature: forward.challengeSignature }
    const other = pbftDomain(31337n, '0x0000000000000000000000000000000000000001')
    expect(recoverAttestChallenger(other, signed)).not.toBe(header.signer)
    expect(() => attestChallengeDigest(domain, { ...signed, seq: 1n << 64n })).toThrow(/seq/)
    expect(() =>
      attestChallengeDigest(domain, { ...signed, blockHash: new Uint8Array(31) }),
    ).toThrow(/blockHash/)
  })
})
