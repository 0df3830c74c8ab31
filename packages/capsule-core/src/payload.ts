/**
 * The payload STREAM (SPEC.md §6): AES-256-GCM chunks under a key derived from the data key,
 * nonce = 11-byte big-endian chunk counter || last-chunk flag, AAD = header hash.
 *
 * Both directions are synchronous state machines fed with arbitrary pieces of input; the
 * Web and Node stream wrappers and the whole-buffer functions all use them, so every entry
 * point enforces the same rules and throws the same typed errors.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto'
import { createPayloadDigestCombiner, type PayloadDigestCombiner } from './bundle/payload-digest.ts'
import { concatBytes, equalBytes } from './encoding/bytes.ts'
import {
  CapsuleFormatError,
  CapsuleIntegrityError,
  CapsuleTruncatedError,
  InvalidArgumentError,
} from './errors.ts'
import { CHUNK_TAG_LENGTH } from './header.ts'
import type { CommitmentCombiner } from './keys.ts'
import { chunkPlaintextLength, type ParsedCapsuleHeader } from './parse.ts'

const ALGORITHM = 'aes-256-gcm'

/**
 * Cipher input is fed in slices of at most this many bytes. Each `update` returns a fresh
 * buffer; at 64 KiB these come from the malloc free lists rather than fresh mmaps, and the
 * file helpers release them right after writing (SPEC.md §6.4).
 */
export const CIPHER_SLICE = 64 * 1024

function updateSliced(
  c: { update(b: Uint8Array): Uint8Array },
  p: Uint8Array,
  out: Uint8Array[],
): void {
  for (let o = 0; o < p.length; o += CIPHER_SLICE) {
    const d = c.update(o === 0 && p.length <= CIPHER_SLICE ? p : p.subarray(o, o + CIPHER_SLICE))
    if (d.length > 0) out.push(d)
  }
}

/** The 12-byte nonce of chunk `index`. */
export function chunkNonce(index: number, last: boolean): Uint8Array {
  const nonce = new Uint8Array(12)
  const view = new DataView(nonce.buffer)
  view.setUint32(3, Math.floor(index / 2 ** 32), false)
  view.setUint32(7, index >>> 0, false)
  nonce[11] = last ? 1 : 0
  return nonce
}

/** Pieces shorter than this are copied into the queue's own buffer instead of kept as they are. */
const SMALL_PIECE = 8 * 1024
/** The buffer small pieces are gathered in. */
const GATHER_CAPACITY = 64 * 1024

/**
 * A FIFO of byte pieces that hands out exact lengths. Pieces of {@link SMALL_PIECE} bytes or
 * more are kept as they are (no copy); smaller ones are copied into one gathering buffer, so
 * the queue holds at most about `2 × length / SMALL_PIECE + 2` objects whatever the sizes of
 * the writes (a peer trickling 1-byte pieces costs bytes, not one object per byte), and never
 * a reference to a larger buffer a small view was cut from.
 */
class ByteQueue {
  private pieces: Uint8Array[] = []
  private gather: Uint8Array | undefined
  private gathered = 0
  length = 0

  /** Objects held (pieces and the gathering buffer): for the memory bound's tests. */
  get pieceCount(): number {
    return this.pieces.length + (this.gathered > 0 ? 1 : 0)
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.length += bytes.length
    if (bytes.length >= SMALL_PIECE) {
      this.flush()
      this.pieces.push(bytes)
      return
    }
    let off = 0
    while (off < bytes.length) {
      this.gather ??= new Uint8Array(GATHER_CAPACITY)
      const n = Math.min(bytes.length - off, GATHER_CAPACITY - this.gathered)
      this.gather.set(bytes.subarray(off, off + n), this.gathered)
      this.gathered += n
      off += n
      if (this.gathered === GATHER_CAPACITY) {
        // Full: hand the buffer itself over, and start a new one when needed.
        this.pieces.push(this.gather)
        this.gather = undefined
        this.gathered = 0
      }
    }
  }

  /** Moves the gathered bytes to the pieces (as an exact copy; the buffer is reused). */
  private flush(): void {
    if (this.gathered === 0 || this.gather === undefined) return
    this.pieces.push(this.gather.slice(0, this.gathered))
    this.gathered = 0
  }

  /** Removes and returns pieces totalling exactly `n` bytes (n <= length). */
  take(n: number): Uint8Array[] {
    this.flush()
    const out: Uint8Array[] = []
    let need = n
    while (need > 0) {
      const head = this.pieces[0] as Uint8Array
      if (head.length <= need) {
        out.push(head)
        this.pieces.shift()
        need -= head.length
      } else {
        out.push(head.subarray(0, need))
        this.pieces[0] = head.subarray(need)
        need = 0
      }
    }
    this.length -= n
    return out
  }

  /** Copies the first `n` bytes into one buffer, leaving the queue unchanged. */
  peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.length))
    let off = 0
    const parts =
      this.gathered > 0 && this.gather !== undefined
        ? [...this.pieces, this.gather.subarray(0, this.gathered)]
        : this.pieces
    for (const p of parts) {
      if (off >= out.length) break
      const part = p.subarray(0, out.length - off)
      out.set(part, off)
      off += part.length
    }
    return out
  }
}

/** Encrypts one chunk given as pieces; returns ciphertext pieces followed by the tag. */
export function encryptChunk(
  key: Uint8Array,
  aad: Uint8Array,
  index: number,
  last: boolean,
  pieces: readonly Uint8Array[],
): Uint8Array[] {
  const cipher = createCipheriv(ALGORITHM, key, chunkNonce(index, last))
  cipher.setAAD(aad)
  const out: Uint8Array[] = []
  for (const p of pieces) updateSliced(cipher, p, out)
  const f = cipher.final()
  if (f.length > 0) out.push(f)
  out.push(cipher.getAuthTag())
  return out
}

/**
 * Decrypts one chunk (ciphertext pieces, tag at the end). Returns the plaintext pieces, or
 * `undefined` if authentication fails. Plaintext is never released before the tag checks.
 */
export function decryptChunk(
  key: Uint8Array,
  aad: Uint8Array,
  index: number,
  last: boolean,
  pieces: readonly Uint8Array[],
): Uint8Array[] | undefined {
  let total = 0
  for (const p of pieces) total += p.length
  if (total < CHUNK_TAG_LENGTH) return undefined
  const bodyLength = total - CHUNK_TAG_LENGTH
  const decipher = createDecipheriv(ALGORITHM, key, chunkNonce(index, last))
  decipher.setAAD(aad)
  const tag = new Uint8Array(CHUNK_TAG_LENGTH)
  const out: Uint8Array[] = []
  let off = 0
  for (const p of pieces) {
    const bodyPart =
      off < bodyLength ? p.subarray(0, Math.max(0, bodyLength - off)) : p.subarray(0, 0)
    if (bodyPart.length > 0) updateSliced(decipher, bodyPart, out)
    const tagPart = p.subarray(bodyPart.length)
    if (tagPart.length > 0) tag.set(tagPart, off + bodyPart.length - bodyLength)
    off += p.length
  }
  decipher.setAuthTag(tag)
  try {
    const f = decipher.final()
    if (f.length > 0) out.push(f)
  } catch {
    for (const o of out) o.fill(0)
    return undefined
  }
  return out
}

/** The error for `length` bytes after a capsule's last chunk. */
export function trailingData(length: number): CapsuleIntegrityError {
  return new CapsuleIntegrityError('data after the last chunk', {
    details: { reason: 'trailing-data', extraBytes: length },
    hint: 'Bytes were appended to the capsule (e.g. a duplicated last chunk).',
  })
}

/** The error every opener throws when the plaintext does not match the header commitment. */
export function commitmentMismatch(): CapsuleIntegrityError {
  return new CapsuleIntegrityError('plaintext does not match the header commitment', {
    details: { reason: 'plaintext-commitment' },
    hint: 'The payload was re-encrypted by someone holding the data key; the owner did not sign this content.',
  })
}

/** Encrypts a plaintext stream into chunks. Holds at most one chunk of plaintext. */
export class PayloadSealer {
  private readonly queue = new ByteQueue()
  private index = 0
  private received = 0
  private done = false
  private readonly key: Uint8Array
  private readonly aad: Uint8Array
  private readonly chunkSize: number
  private readonly plaintextSize: number

  constructor(key: Uint8Array, aad: Uint8Array, chunkSize: number, plaintextSize: number) {
    this.key = key
    this.aad = aad
    this.chunkSize = chunkSize
    this.plaintextSize = plaintextSize
  }

  write(bytes: Uint8Array): Uint8Array[] {
    if (this.done) throw new InvalidArgumentError('write after end')
    this.received += bytes.length
    if (this.received > this.plaintextSize) {
      throw new InvalidArgumentError('plaintext is longer than header.payload.plaintextSize', {
        details: { plaintextSize: this.plaintextSize, received: this.received },
      })
    }
    this.queue.push(bytes)
    const out: Uint8Array[] = []
    // A full chunk is only known not to be the last once a byte after it has arrived.
    while (this.queue.length > this.chunkSize) {
      out.push(
        ...encryptChunk(this.key, this.aad, this.index++, false, this.queue.take(this.chunkSize)),
      )
    }
    return out
  }

  end(): Uint8Array[] {
    if (this.done) return []
    this.done = true
    if (this.received !== this.plaintextSize) {
      throw new InvalidArgumentError('plaintext is shorter than header.payload.plaintextSize', {
        details: { plaintextSize: this.plaintextSize, received: this.received },
      })
    }
    const out = encryptChunk(
      this.key,
      this.aad,
      this.index++,
      true,
      this.queue.take(this.queue.length),
    )
    this.key.fill(0)
    return out
  }

  /** Zeroes the payload key (after an error or an abort). */
  destroy(): void {
    this.done = true
    this.key.fill(0)
  }
}

/** Decrypts the payload that follows a parsed header (either format version). */
export class PayloadOpener {
  private readonly queue = new ByteQueue()
  private index = 0
  private done = false
  private readonly commitment: CommitmentCombiner | undefined
  /** The run measurement's payload digest, from the plaintext's leaves (ADR 0059). */
  private readonly payload: PayloadDigestCombiner | undefined
  private payloadDigestValue: Uint8Array | undefined
  private readonly parsed: ParsedCapsuleHeader
  private readonly key: Uint8Array
  /** Version 2: the tag table, once read (SPEC.md §11.2). */
  private tags: Uint8Array | undefined
  /** Version 2: the zero padding between the tag table and the bodies, once checked. */
  private padded = false

  /**
   * @param commitment - when given, the header's commitment is checked before the last
   *   chunk's plaintext is released: version 1's keyed combiner (`createCommitmentCombiner`),
   *   version 2's unkeyed one (`createCiphertextCommitmentCombiner`).
   */
  constructor(parsed: ParsedCapsuleHeader, key: Uint8Array, commitment?: CommitmentCombiner) {
    this.parsed = parsed
    this.key = key
    this.commitment = commitment
    const { chunkSize, plaintextSize } = parsed.header.payload
    this.payload = commitment ? createPayloadDigestCombiner(chunkSize, plaintextSize) : undefined
    if (parsed.header.version === 1) this.padded = true
  }

  /**
   * The payload digest (version 2, docs/bundle.md §7) of the plaintext this opener released,
   * from the leaves it hashed along the way: no second pass over the data.
   *
   * @throws {InvalidArgumentError} before the last chunk passed its checks, or when the opener
   *   was made without the commitment check (it hashed no leaves).
   */
  payloadDigest(): Uint8Array {
    if (!this.payloadDigestValue) {
      throw new InvalidArgumentError(
        this.payload
          ? 'the payload digest is known once the last chunk checked'
          : 'the payload digest needs the commitment check',
      )
    }
    return this.payloadDigestValue.slice()
  }

  /** Bytes the next step needs: version 2's table, then its padding, then a chunk (and tag). */
  private needed(): number {
    const { parsed } = this
    if (parsed.header.version !== 1) {
      if (!this.tags) return parsed.chunkCount * CHUNK_TAG_LENGTH
      if (!this.padded) return parsed.bodiesOffset - parsed.payloadOffset - this.tags.length
    }
    const length = chunkPlaintextLength(parsed.header, this.index)
    return parsed.header.version === 1 ? length + CHUNK_TAG_LENGTH : length
  }

  write(bytes: Uint8Array): Uint8Array[] {
    if (this.done) {
      if (bytes.length > 0) this.trailing(bytes.length)
      return []
    }
    this.queue.push(bytes)
    const out: Uint8Array[] = []
    const last = this.parsed.chunkCount - 1
    const v1 = this.parsed.header.version === 1
    while (!this.done && this.queue.length >= this.needed()) {
      if (!v1 && !this.tags) {
        this.tags = concatBytes(...this.queue.take(this.needed()))
        continue
      }
      if (!this.padded) {
        const padding = this.queue.take(this.needed())
        if (padding.some((p) => p.some((b) => b !== 0))) throw nonZeroPadding()
        this.padded = true
        continue
      }
      const i = this.index
      const pieces = this.queue.take(this.needed())
      const sealed = v1 ? pieces : [...pieces, this.tagOf(i)]
      const plain = decryptChunk(this.key, this.parsed.headerHash, i, i === last, sealed)
      if (!plain) {
        if (i === last && decryptChunk(this.key, this.parsed.headerHash, i, false, sealed)) {
          throw new CapsuleFormatError('the last chunk is not marked as last', {
            details: { chunk: i, reason: 'last-chunk-not-final' },
            hint: 'The sealer wrote a non-final last chunk (e.g. followed by an empty final chunk).',
          })
        }
        throw new CapsuleIntegrityError('payload chunk failed authentication', {
          details: { chunk: i, reason: 'chunk-authentication' },
          hint: 'The chunk was altered, moved, duplicated, or belongs to another header.',
        })
      }
      if (this.commitment) {
        const plainLeaf = sha256Pieces(plain)
        this.commitment.add(v1 ? plainLeaf : sha256Pieces(pieces))
        this.payload?.add(plainLeaf)
      }
      this.index++
      if (i === last) {
        this.done = true
        if (
          this.commitment &&
          !equalBytes(this.commitment.digest(), this.parsed.header.payload.contentCommitment)
        ) {
          for (const p of plain) p.fill(0)
          throw v1 ? commitmentMismatch() : payloadCommitmentMismatch()
        }
        const payloadDigest = this.payload?.digest()
        if (this.queue.length > 0) this.trailing(this.queue.length)
        // only for a payload that opened whole: not for one refused for its trailing bytes
        this.payloadDigestValue = payloadDigest
      }
      out.push(...plain)
    }
    return out
  }

  private tagOf(index: number): Uint8Array {
    return (this.tags as Uint8Array).subarray(
      index * CHUNK_TAG_LENGTH,
      (index + 1) * CHUNK_TAG_LENGTH,
    )
  }

  private trailing(length: number): never {
    throw trailingData(length)
  }

  end(): void {
    if (!this.done) {
      throw new CapsuleTruncatedError('capsule ends before its last chunk', {
        details: {
          chunk: this.index,
          chunkCount: this.parsed.chunkCount,
          bufferedBytes: this.queue.length,
          neededBytes: this.needed(),
          ...(this.parsed.header.version !== 1 && !this.padded
            ? { in: this.tags ? 'padding' : 'tag-table' }
            : {}),
        },
      })
    }
    this.key.fill(0)
  }

  /** Zeroes the payload key (after an error or an abort); the payload digest is gone too. */
  destroy(): void {
    this.done = true
    this.payloadDigestValue = undefined
    this.key.fill(0)
  }
}

function sha256Pieces(pieces: readonly Uint8Array[]): Uint8Array {
  const hash = createHash('sha256')
  for (const p of pieces) hash.update(p)
  return new Uint8Array(hash.digest())
}

/** Version 2: a byte of the padding before the bodies is not zero (one capsule, one encoding). */
export function nonZeroPadding(): CapsuleFormatError {
  return new CapsuleFormatError('the padding before the payload bodies is not zero', {
    details: { reason: 'padding' },
    hint: 'A version 2 capsule pads its tag table with zero bytes to the bodies (SPEC.md §11.2).',
  })
}

/** Version 2: the error every opener throws when the bodies do not match the header commitment. */
export function payloadCommitmentMismatch(): CapsuleIntegrityError {
  return new CapsuleIntegrityError('payload does not match the header commitment', {
    details: { reason: 'payload-commitment' },
    hint: 'The payload was re-encrypted by someone holding the data key; the owner did not sign this content.',
  })
}

export { ByteQueue }
