/**
 * `0x` hex strings: the one encoder and parser every Digicap package uses (strict: an even
 * number of digits, any case, nothing else).
 */
import { InvalidArgumentError } from '../errors.ts'

/** A `0x`-prefixed hex string. */
export type Hex = `0x${string}`

const HEX_RE = /^0x(?:[0-9a-fA-F]{2})*$/

/** Options of {@link hexToBytes}. */
export interface HexToBytesOptions {
  /** The exact byte length required (any length when absent). */
  length?: number | undefined
  /** What the value is, for the error message (default `value`). */
  name?: string | undefined
}

/**
 * Lowercase `0x` hex of `bytes`.
 *
 * @example
 * ```ts
 * toHex(new Uint8Array([0xde, 0xad])) // '0xdead'
 * ```
 */
export function toHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`
}

/** True for a `0x` string of whole bytes (and, with `length`, of exactly that many). */
export function isHex(value: unknown, length?: number): value is Hex {
  return (
    typeof value === 'string' &&
    HEX_RE.test(value) &&
    (length === undefined || value.length === 2 + 2 * length)
  )
}

/**
 * The bytes of a `0x` hex string (either case).
 *
 * @throws {InvalidArgumentError} for a value that is not `0x` + whole bytes of hex, or not
 * `length` bytes long.
 * @example
 * ```ts
 * const nonce = hexToBytes(text, { length: 32, name: 'nonce' })
 * ```
 */
export function hexToBytes(value: string, options: HexToBytesOptions = {}): Uint8Array {
  const name = options.name ?? 'value'
  if (typeof value !== 'string' || !HEX_RE.test(value)) {
    throw new InvalidArgumentError(`${name} must be a 0x-prefixed hex string`, {
      details: {
        field: name,
        got: typeof value === 'string' ? `${value.length} chars` : typeof value,
      },
    })
  }
  const out = new Uint8Array(Buffer.from(value.slice(2), 'hex'))
  if (options.length !== undefined && out.length !== options.length) {
    throw new InvalidArgumentError(`${name} must be ${options.length} bytes`, {
      details: { field: name, length: out.length },
    })
  }
  return out
}
