/**
 * A bounds-checked big-endian cursor over TPM marshalled bytes. Every read names the field
 * it reads, so a short buffer fails with a {@link TpmFormatError} that says which field.
 */
import { TpmFormatError } from '../errors.ts'

export class TpmReader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #structure: string
  #offset = 0

  constructor(bytes: Uint8Array, structure: string) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.#structure = structure
  }

  get offset(): number {
    return this.#offset
  }

  /** Fails with a format error naming `field`, at the current offset. */
  fail(field: string, shortMessage: string, extra: Record<string, unknown> = {}): never {
    throw new TpmFormatError(shortMessage, {
      details: { structure: this.#structure, field, offset: this.#offset, ...extra },
      hint: 'The bytes are not a TPM 2.0 structure this verifier accepts; check what produced them.',
    })
  }

  #need(field: string, n: number): void {
    if (this.#offset + n > this.#bytes.length) {
      this.fail(field, `Truncated ${this.#structure}: ${field} needs ${n} bytes`, {
        need: n,
        have: this.#bytes.length - this.#offset,
      })
    }
  }

  u8(field: string): number {
    this.#need(field, 1)
    const v = this.#view.getUint8(this.#offset)
    this.#offset += 1
    return v
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

  u64(field: string): bigint {
    this.#need(field, 8)
    const v = this.#view.getBigUint64(this.#offset)
    this.#offset += 8
    return v
  }

  bytes(field: string, n: number): Uint8Array {
    this.#need(field, n)
    const v = this.#bytes.slice(this.#offset, this.#offset + n)
    this.#offset += n
    return v
  }

  /** A TPM2B: u16 size then that many bytes; `max` is the structure's largest legal size. */
  sized(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`)
    if (size > max) this.fail(`${field}.size`, `${field} is larger than allowed`, { size, max })
    return this.bytes(field, size)
  }

  /** Everything consumed: a structure with trailing bytes is refused, not truncated silently. */
  end(): void {
    if (this.#offset !== this.#bytes.length) {
      this.fail('(end)', `Trailing bytes after ${this.#structure}`, {
        trailing: this.#bytes.length - this.#offset,
      })
    }
  }
}
