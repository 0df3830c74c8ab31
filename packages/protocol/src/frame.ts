/**
 * Framing (SPEC.md §2): `uvarint(length) || body`, the unsigned LEB128 varint that
 * `it-length-prefixed` and `lpStream` write, minimal (no trailing 0x80 groups), and a hard
 * per-protocol maximum body length checked before any body byte is buffered.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import { WireFormatError, WireTooLargeError, WireTruncatedError } from './errors.ts'

/** Default maximum body length of control messages (key release, fast path, acks): 64 KiB. */
export const MAX_CONTROL_FRAME = 64 * 1024
/** Default maximum body length of a result delivery: 4 MiB (bigger results go to IPFS). */
export const MAX_RESULT_FRAME = 4 * 1024 * 1024
/** Largest maximum any caller may configure: 64 MiB. */
export const MAX_FRAME_LIMIT = 64 * 1024 * 1024

/** Checks a caller-supplied `maxSize`. */
export function checkMaxSize(maxSize: number): number {
  if (!Number.isSafeInteger(maxSize) || maxSize < 1 || maxSize > MAX_FRAME_LIMIT) {
    throw new InvalidArgumentError('maxSize must be an integer in [1, 64 MiB]', {
      details: { maxSize },
    })
  }
  return maxSize
}

/** Number of bytes of the varint of `n`. */
export function varintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

/** Encodes `n` (a safe non-negative integer) as a minimal unsigned LEB128 varint. */
export function encodeVarint(n: number): Uint8Array {
  const out = new Uint8Array(varintLength(n))
  let i = 0
  while (n >= 0x80) {
    out[i++] = (n % 128) | 0x80
    n = Math.floor(n / 128)
  }
  out[i] = n
  return out
}

/**
 * Incremental parser of a length prefix: feed bytes one at a time.
 * Returns the body length when the varint is complete, or `undefined` for "need more".
 */
export class LengthPrefixParser {
  #value = 0
  #count = 0
  #scale = 1
  readonly #maxSize: number
  constructor(maxSize: number) {
    this.#maxSize = maxSize
  }
  /** Bytes consumed so far. */
  get count(): number {
    return this.#count
  }
  /**
   * @throws {WireFormatError} for a non-minimal varint.
   * @throws {WireTooLargeError} when the length exceeds `maxSize`.
   */
  push(byte: number): number | undefined {
    this.#count++
    this.#value += (byte & 0x7f) * this.#scale
    this.#scale *= 128
    if (this.#value > this.#maxSize) {
      throw new WireTooLargeError('Frame is larger than the maximum', {
        details: { maxSize: this.#maxSize, atLeast: this.#value },
        hint: 'Raise maxSize on both ends, or send large payloads by CID.',
      })
    }
    if ((byte & 0x80) !== 0) return undefined
    if (byte === 0 && this.#count > 1) {
      throw new WireFormatError('Frame length varint is not minimal', {
        details: { reason: 'non-minimal-varint', offset: this.#count - 1 },
      })
    }
    return this.#value
  }
}

/**
 * Prefixes a body with its varint length.
 *
 * @throws {WireTooLargeError} if the body is longer than `maxSize`.
 */
export function encodeFrame(body: Uint8Array, maxSize: number = MAX_FRAME_LIMIT): Uint8Array {
  if (!(body instanceof Uint8Array)) {
    throw new InvalidArgumentError('body must be a Uint8Array', { details: { got: typeof body } })
  }
  if (body.length > maxSize) {
    throw new WireTooLargeError('Message is larger than the maximum frame size', {
      details: { length: body.length, maxSize },
    })
  }
  const prefix = encodeVarint(body.length)
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix, 0)
  out.set(body, prefix.length)
  return out
}

/**
 * Splits one whole frame into its body. The input must be exactly one frame.
 *
 * @throws {WireTruncatedError} if the bytes end inside the prefix or body.
 * @throws {WireTooLargeError} if the declared length exceeds `maxSize`.
 * @throws {WireFormatError} for a non-minimal varint or bytes after the frame.
 */
export function decodeFrame(frame: Uint8Array, maxSize: number = MAX_CONTROL_FRAME): Uint8Array {
  if (!(frame instanceof Uint8Array)) {
    throw new WireFormatError('Frame must be a Uint8Array', { details: { got: typeof frame } })
  }
  const parser = new LengthPrefixParser(maxSize)
  let length: number | undefined
  let offset = 0
  while (length === undefined) {
    const byte = frame[offset]
    if (byte === undefined) {
      throw new WireTruncatedError('Frame ends inside its length prefix', {
        details: { received: frame.length },
      })
    }
    length = parser.push(byte)
    offset++
  }
  const end = offset + length
  if (frame.length < end) {
    throw new WireTruncatedError('Frame ends before its body does', {
      details: { expected: length, received: frame.length - offset },
    })
  }
  if (frame.length > end) {
    throw new WireFormatError('Bytes after the end of the frame', {
      details: { reason: 'trailing-bytes', extra: frame.length - end },
    })
  }
  return frame.slice(offset, end)
}
