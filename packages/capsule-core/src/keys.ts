/**
 * Keys derived from the data key (SPEC.md §4.3, §6.1). All use HKDF-SHA256 with the
 * capsule id as salt and a distinct label as info, so no derived key equals another.
 */
import { createHash, createHmac, type Hash, type Hmac, hkdfSync, randomBytes } from 'node:crypto'
import { checkBytes } from './encoding/bytes.ts'
import { InvalidArgumentError } from './errors.ts'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './header.ts'

/** Length of a data key: 32 bytes (AES-256). */
export const DATA_KEY_LENGTH = 32

/** HKDF info of the payload key for cipher suite 1. */
export const PAYLOAD_KEY_LABEL = 'digicap/v1 payload aes-256-gcm-stream'
/** HKDF info of the plaintext commitment key. */
export const COMMITMENT_KEY_LABEL = 'digicap/v1 plaintext commitment chunked hmac-sha256'
/** HKDF info of the key commitment value stored in the header. */
export const KEY_COMMITMENT_LABEL = 'digicap/v1 key commitment'

function derive(dataKey: Uint8Array, capsuleId: Uint8Array, label: string): Uint8Array {
  checkBytes('dataKey', dataKey, DATA_KEY_LENGTH)
  checkBytes('capsuleId', capsuleId, 32)
  return new Uint8Array(hkdfSync('sha256', dataKey, capsuleId, label, 32))
}

/** The HMAC key of the plaintext commitment (SPEC.md §4.3). */
export function deriveCommitmentKey(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, COMMITMENT_KEY_LABEL)
}

export function derivePayloadKey(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, PAYLOAD_KEY_LABEL)
}

/**
 * The 32-byte key commitment stored in the header: HKDF-SHA256(dataKey, capsuleId,
 * "digicap/v1 key commitment"). Lets an opener reject a wrong key before any chunk, and
 * makes the payload key-committing (SPEC.md §6.1).
 */
export function keyCommitment(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, KEY_COMMITMENT_LABEL)
}

/** @throws {InvalidArgumentError} unless a power of two within the header's limits. */
export function checkChunkSize(chunkSize: number): void {
  if (
    !Number.isSafeInteger(chunkSize) ||
    chunkSize < MIN_CHUNK_SIZE ||
    chunkSize > MAX_CHUNK_SIZE ||
    (chunkSize & (chunkSize - 1)) !== 0
  ) {
    throw new InvalidArgumentError('chunkSize must be a power of two within the header limits', {
      details: { chunkSize, min: MIN_CHUNK_SIZE, max: MAX_CHUNK_SIZE },
    })
  }
}

/** Result of a plaintext commitment: what the header's payload fields need. */
export interface PlaintextCommitment {
  plaintextSize: number
  /** `HMAC(commitmentKey, SHA-256(chunk 0) ‖ … ‖ SHA-256(chunk n−1))`, SPEC.md §4.3. */
  plaintextCommitment: Uint8Array
  /** The chunk size the chunks were cut at; the header must use the same. */
  chunkSize: number
}

/** Version 2's commitment (SPEC.md §11.3): what the header's payload fields need. */
export interface CiphertextCommitment {
  plaintextSize: number
  /** `SHA-256(label ‖ u32be(chunkSize) ‖ u64be(plaintextSize) ‖ SHA-256(body 0) ‖ …)`. */
  payloadCommitment: Uint8Array
  /** The chunk size the bodies were cut at: {@link V2_CHUNK_SIZE}. */
  chunkSize: number
}

/** Incremental plaintext commitment. */
export interface PlaintextCommitter {
  /** Feeds the next plaintext bytes (any piece sizes: chunk boundaries are tracked here). */
  update(bytes: Uint8Array): void
  /** Finishes; returns the byte count, the 32-byte commitment and the chunk size. */
  digest(): PlaintextCommitment
}

/**
 * Combines per-chunk SHA-256 digests, given in chunk order, into the commitment. This is the
 * half of the commitment that parallel hashers share: each chunk's digest can be computed on
 * any core (`leaf`), the combination runs on one.
 */
export interface CommitmentCombiner {
  /** Adds the SHA-256 of the next chunk's plaintext (32 bytes). */
  add(leaf: Uint8Array): void
  /** The commitment over every leaf added. */
  digest(): Uint8Array
}

/** The label that starts version 2's payload commitment (SPEC.md §11.3). */
export const V2_COMMITMENT_LABEL = 'digicap capsule v2 ciphertext commitment'

/**
 * Starts version 2's {@link CommitmentCombiner} (SPEC.md §11.3): unkeyed, over the SHA-256 of
 * every body's ciphertext, `SHA-256(label ‖ u32be(chunkSize) ‖ u64be(plaintextSize) ‖ leaf_0 ‖ …)`.
 * The leaves are the bodies' IPFS leaf digests: anyone can check the bodies against a header.
 */
export function createCiphertextCommitmentCombiner(
  chunkSize: number,
  plaintextSize: number,
): CommitmentCombiner {
  const hash = createHash('sha256').update(V2_COMMITMENT_LABEL)
  const sizes = new Uint8Array(12)
  const view = new DataView(sizes.buffer)
  view.setUint32(0, chunkSize, false)
  view.setBigUint64(4, BigInt(plaintextSize), false)
  hash.update(sizes)
  return {
    add(leaf) {
      hash.update(leaf)
    },
    digest() {
      return new Uint8Array(hash.digest())
    },
  }
}

/**
 * The combiner of a header's content commitment, by format version: version 1's keyed one
 * (its key derived from the data key), version 2's over the ciphertext.
 */
export function contentCommitmentCombiner(
  version: number,
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  chunkSize: number,
  plaintextSize: number,
): CommitmentCombiner {
  return version === 1
    ? createCommitmentCombiner(deriveCommitmentKey(dataKey, capsuleId))
    : createCiphertextCommitmentCombiner(chunkSize, plaintextSize)
}

/** Starts a {@link CommitmentCombiner} keyed with a commitment key (which it zeroes). */
export function createCommitmentCombiner(commitmentKey: Uint8Array): CommitmentCombiner {
  checkBytes('commitmentKey', commitmentKey, 32)
  const hmac: Hmac = createHmac('sha256', commitmentKey)
  commitmentKey.fill(0)
  return {
    add(leaf) {
      hmac.update(leaf)
    },
    digest() {
      return new Uint8Array(hmac.digest())
    },
  }
}

/**
 * Starts an incremental plaintext commitment (SPEC.md §4.3): the plaintext is cut into
 * chunks of `chunkSize` (the header's chunk size), each chunk is hashed with SHA-256, and the
 * digests are combined with HMAC-SHA256 under HKDF-SHA256(dataKey, capsuleId,
 * "digicap/v1 plaintext commitment chunked hmac-sha256"). Per-chunk hashing is what lets
 * files be committed on every core at once; a single HMAC over the plaintext could not.
 * Use it to build a header for a stream without holding the stream in memory.
 *
 * @throws {InvalidArgumentError} for a data key or capsule id of the wrong length, or a bad chunk size.
 * @example
 * ```ts
 * const c = createPlaintextCommitment(dataKey, capsuleId, DEFAULT_CHUNK_SIZE)
 * for await (const piece of fs.createReadStream(path)) c.update(piece)
 * const commitment = c.digest() // { plaintextSize, plaintextCommitment, chunkSize }
 * ```
 */
export function createPlaintextCommitment(
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  chunkSize: number,
): PlaintextCommitter {
  checkChunkSize(chunkSize)
  const combiner = createCommitmentCombiner(derive(dataKey, capsuleId, COMMITMENT_KEY_LABEL))
  let size = 0
  let inChunk = 0
  let chunk: Hash = createHash('sha256')
  let finished = false
  return {
    update(bytes) {
      checkBytes('bytes', bytes)
      if (finished) throw new InvalidArgumentError('the commitment was already digested')
      let off = 0
      while (off < bytes.length) {
        const take = Math.min(chunkSize - inChunk, bytes.length - off)
        chunk.update(take === bytes.length ? bytes : bytes.subarray(off, off + take))
        off += take
        inChunk += take
        size += take
        if (inChunk === chunkSize) {
          combiner.add(chunk.digest())
          chunk = createHash('sha256')
          inChunk = 0
        }
      }
    },
    digest() {
      if (finished) throw new InvalidArgumentError('the commitment was already digested')
      finished = true
      // The last chunk is partial, or the only (empty) chunk of an empty payload; a payload
      // of whole chunks has no empty chunk after them (SPEC.md §6.2).
      if (inChunk > 0 || size === 0) combiner.add(chunk.digest())
      return { plaintextSize: size, plaintextCommitment: combiner.digest(), chunkSize }
    },
  }
}

/** A fresh random 32-byte data key. Zero it with `.fill(0)` when done. */
export function generateDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(DATA_KEY_LENGTH))
}

/** A fresh random 32-byte capsule id. */
export function generateCapsuleId(): Uint8Array {
  return new Uint8Array(randomBytes(32))
}
