/**
 * Big-endian marshalling of TPM 2.0 structures (Part 2): a growing writer for commands and
 * a bounds-checked reader for responses. A short or oversized response field fails with a
 * `TpmCommandError` (`reason: 'malformed-response'`) naming the command and the field.
 */
import { malformedResponse } from './frame.ts'

/** Appends big-endian integers and byte strings; `bytes()` returns the marshalled buffer. */
export class TpmWriter {
  #chunks: Uint8Array[] = []
  #length = 0

  get length(): number {
    return this.#length
  }

  raw(bytes: Uint8Array): this {
    this.#chunks.push(bytes)
    this.#length += bytes.length
    return this
  }

  u8(v: number): this {
    return this.raw(Uint8Array.of(v & 0xff))
  }

  u16(v: number): this {
    const b = new Uint8Array(2)
    new DataView(b.buffer).setUint16(0, v)
    return this.raw(b)
  }

  u32(v: number): this {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, v >>> 0)
    return this.raw(b)
  }

  /** A TPM2B: u16 size, then the bytes. */
  sized(bytes: Uint8Array): this {
    return this.u16(bytes.length).raw(bytes)
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length)
    let at = 0
    for (const c of this.#chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
}

/** Reads a response body field by field; every read names its field for the error. */
export class TpmResponseReader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #command: string
  #offset: number

  constructor(bytes: Uint8Array, command: string, offset = 0) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.#command = command
    this.#offset = offset
  }

  get offset(): number {
    return this.#offset
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset
  }

  #need(field: string, n: number): void {
    if (this.#offset + n > this.#bytes.length) {
      throw malformedResponse(this.#command, 'short', {
        field,
        need: n,
        have: this.#bytes.length - this.#offset,
      })
    }
  }

  u8(field: string): number {
    this.#need(field, 1)
    return this.#view.getUint8(this.#offset++)
  }

  u16(field: string): number {
    this.#need(field, 2)
    const v = this.#view.getUint16(this.#offset)
    this.#offset += 2
    return v
  }

  u32(field: string): number {
    this.#need(field, 4)
    const v = this.#view.getUint32(this.#offset)
    this.#offset += 4
    return v
  }

  raw(field: string, n: number): Uint8Array {
    this.#need(field, n)
    const v = this.#bytes.slice(this.#offset, this.#offset + n)
    this.#offset += n
    return v
  }

  /** A TPM2B no larger than `max`. */
  sized(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`)
    if (size > max) throw malformedResponse(this.#command, 'field-size', { field, size, max })
    return this.raw(field, size)
  }

  /** Everything read: trailing bytes are a malformed response, not ignored. */
  end(): void {
    if (this.remaining !== 0) {
      throw malformedResponse(this.#command, 'trailing-bytes', { trailing: this.remaining })
    }
  }
}
