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
import { equalBytes } from './encoding/bytes.ts'
import {
  CapsuleFormatError,
  CapsuleIntegrityError,
  CapsuleTruncatedError,
  InvalidArgumentError,
} from './errors.ts'
import { CHUNK_TAG_LENGTH } from './header.ts'
import { type CommitmentCombiner, createCommitmentCombiner } from './keys.ts'
import { chunkCountFor, type ParsedCapsuleHeader } from './parse.ts'

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

/** Decrypts the chunk stream that follows a parsed header. */
export class PayloadOpener {
  private readonly queue = new ByteQueue()
  private index = 0
  private done = false
  private readonly commitment: CommitmentCombiner | undefined
  /** The run measurement's payload digest, from the commitment's leaves (ADR 0059). */
  private readonly payload: PayloadDigestCombiner | undefined
  private payloadDigestValue: Uint8Array | undefined
  private readonly parsed: ParsedCapsuleHeader
  private readonly key: Uint8Array

  /**
   * @param commitmentKey - when given, the plaintext commitment is checked before the last
   *   chunk's plaintext is released.
   */
  constructor(parsed: ParsedCapsuleHeader, key: Uint8Array, commitmentKey?: Uint8Array) {
    this.parsed = parsed
    this.key = key
    this.commitment = commitmentKey ? createCommitmentCombiner(commitmentKey) : undefined
    const { chunkSize, plaintextSize } = parsed.header.payload
    this.payload = commitmentKey ? createPayloadDigestCombiner(chunkSize, plaintextSize) : undefined
  }

  /**
   * The payload digest (version 2, docs/bundle.md §7) of the plaintext this opener released,
   * from the leaves it hashed for the commitment: no second pass over the data.
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

  private expectedLength(index: number): number {
    const { plaintextSize, chunkSize } = this.parsed.header.payload
    const n = chunkCountFor(plaintextSize, chunkSize)
    return (index < n - 1 ? chunkSize : plaintextSize - (n - 1) * chunkSize) + CHUNK_TAG_LENGTH
  }

  write(bytes: Uint8Array): Uint8Array[] {
    if (this.done) {
      if (bytes.length > 0) this.trailing(bytes.length)
      return []
    }
    this.queue.push(bytes)
    const out: Uint8Array[] = []
    const last = this.parsed.chunkCount - 1
    while (!this.done && this.queue.length >= this.expectedLength(this.index)) {
      const i = this.index
      const pieces = this.queue.take(this.expectedLength(i))
      const plain = decryptChunk(this.key, this.parsed.headerHash, i, i === last, pieces)
      if (!plain) {
        if (i === last && decryptChunk(this.key, this.parsed.headerHash, i, false, pieces)) {
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
        const leaf = createHash('sha256')
        for (const p of plain) leaf.update(p)
        const digest = leaf.digest()
        this.commitment.add(digest)
        this.payload?.add(digest)
      }
      this.index++
      if (i === last) {
        this.done = true
        if (
          this.commitment &&
          !equalBytes(this.commitment.digest(), this.parsed.header.payload.plaintextCommitment)
        ) {
          for (const p of plain) p.fill(0)
          throw commitmentMismatch()
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
          neededBytes: this.expectedLength(this.index),
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

export { ByteQueue }
