/**
 * The payload digest of a run measurement, version 2 (docs/bundle.md §7, ADR 0059): a
 * SHA-256 over the plaintext commitment's leaves (SPEC.md §4.3), so an opener that checks the
 * commitment has it for free, without a second pass over the data:
 *
 * ```
 * P = SHA-256( "digicap/v2 payload digest chunked sha256" ‖ u32be(chunkSize) ‖ u64be(size)
 *              ‖ SHA-256(chunk 0) ‖ … ‖ SHA-256(chunk n−1) )
 * ```
 *
 * Chunks are cut at `chunkSize` exactly as the commitment's: n = max(1, ⌈size / chunkSize⌉),
 * the empty payload is one empty chunk. Anyone with the plaintext and the header's (public)
 * chunk size recomputes it.
 */
import { createHash, type Hash } from 'node:crypto'
import { checkBytes } from '../encoding/bytes.ts'
import { InvalidArgumentError } from '../errors.ts'
import { checkChunkSize } from '../keys.ts'
import { chunkCountFor } from '../parse.ts'

/** The domain string that starts every version-2 payload digest's input. */
export const PAYLOAD_DIGEST_LABEL = 'digicap/v2 payload digest chunked sha256'

/** Takes the leaves SHA-256(chunk i) in order; `digest` once the last one was added. */
export interface PayloadDigestCombiner {
  add(leaf: Uint8Array): void
  digest(): Uint8Array
}

/**
 * A payload digest fed with leaves (the opener's, which it computes for the commitment).
 *
 * @throws {InvalidArgumentError} for a bad chunk size or size.
 */
export function createPayloadDigestCombiner(
  chunkSize: number,
  plaintextSize: number,
): PayloadDigestCombiner {
  checkChunkSize(chunkSize)
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) {
    throw new InvalidArgumentError('plaintextSize must be a non-negative safe integer', {
      details: { plaintextSize },
    })
  }
  const prefix = new Uint8Array(12)
  const view = new DataView(prefix.buffer)
  view.setUint32(0, chunkSize, false)
  view.setBigUint64(4, BigInt(plaintextSize), false)
  const hash: Hash = createHash('sha256').update(PAYLOAD_DIGEST_LABEL).update(prefix)
  const leaves = chunkCountFor(plaintextSize, chunkSize)
  let added = 0
  return {
    add(leaf) {
      checkBytes('leaf', leaf, 32)
      if (added === leaves) throw new InvalidArgumentError('more leaves than chunks')
      hash.update(leaf)
      added++
    },
    digest() {
      if (added !== leaves) {
        throw new InvalidArgumentError('the payload digest is missing leaves', {
          details: { added, chunks: leaves },
        })
      }
      return new Uint8Array(hash.digest())
    },
  }
}

/**
 * The payload digest of bytes in memory, cut at `chunkSize` (the capsule header's
 * `payload.chunkSize`).
 *
 * @throws {InvalidArgumentError} for a chunk size the header could not hold.
 * @example
 * ```ts
 * const p = payloadDigest(plaintext, parsed.header.payload.chunkSize)
 * ```
 */
export function payloadDigest(data: Uint8Array, chunkSize: number): Uint8Array {
  checkBytes('data', data)
  const combiner = createPayloadDigestCombiner(chunkSize, data.length)
  const n = chunkCountFor(data.length, chunkSize)
  for (let i = 0; i < n; i++) {
    const chunk = data.subarray(i * chunkSize, Math.min((i + 1) * chunkSize, data.length))
    combiner.add(new Uint8Array(createHash('sha256').update(chunk).digest()))
  }
  return combiner.digest()
}
