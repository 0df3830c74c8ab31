/**
 * A verifier's signer for what it signs as a committee member (votes, observations, attestation
 * challenges): EIP-712 typed data only, over a secp256k1 key held in this process, signed by
 * libsecp256k1 in WebAssembly (ADR 0098, amended). libsecp256k1 and noble both take the nonce
 * from RFC 6979 with no extra entropy and give low-s signatures, so the bytes are capsule-core's
 * `privateKeySigner`'s, byte for byte (tested): what ADR 0093's signed-vote record relies on
 * when it signs a slot's digest again after a crash.
 */
import {
  checksumAddress,
  type DigicapSigner,
  type Hex,
  hashTypedData,
  InvalidArgumentError,
  toHex,
} from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { isPrivate, pointFromScalar, signRecoverable } from 'tiny-secp256k1'

/**
 * The signer of `privateKey` (32 bytes, copied: zeroing the caller's array does not disable it).
 * It has no `signTransaction`: a member's transactions go through its node's own sender.
 *
 * @throws {InvalidArgumentError} if the key is not a valid secp256k1 private key.
 * @example
 * ```ts
 * const signer = libsecp256k1Signer(accountKey)
 * const vote = await signVote(signer, domain, { phase: 'prepare', jobId, view: 0n, preparedView: 0n, verdict, evidenceHash })
 * ```
 */
export function libsecp256k1Signer(privateKey: Uint8Array): DigicapSigner {
  const key = privateKey instanceof Uint8Array ? Uint8Array.from(privateKey) : undefined
  if (key === undefined || key.length !== 32 || !isPrivate(key)) {
    throw new InvalidArgumentError('privateKey must be a valid 32-byte secp256k1 private key', {
      details: { field: 'privateKey' },
    })
  }
  const publicKey = pointFromScalar(key, false) as Uint8Array
  const address = checksumAddress(keccak_256(publicKey.subarray(1)).subarray(12))
  return {
    address,
    async signTypedData(typedData): Promise<Hex> {
      const { signature, recoveryId } = signRecoverable(hashTypedData(typedData), key)
      const out = new Uint8Array(65)
      out.set(signature)
      out[64] = 27 + recoveryId
      return toHex(out)
    },
  }
}
