/** Byte-array helpers: argument checks, concatenation, comparison, UTF-8. */
import { InvalidArgumentError } from '../errors.ts'
import { hexToBytes } from './hex.ts'

export const utf8 = new TextEncoder()
export const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** Accepts bytes or a hex string; returns bytes of the given length. */
export function bytesArg(name: string, value: Uint8Array | string, length?: number): Uint8Array {
  if (typeof value === 'string') return hexToBytes(value, { name, length })
  checkBytes(name, value, length)
  return value
}

export function checkBytes(
  name: string,
  value: unknown,
  length?: number,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new InvalidArgumentError(`${name} must be a Uint8Array`, {
      details: { got: typeof value },
    })
  }
  if (length !== undefined && value.length !== length) {
    throw new InvalidArgumentError(`${name} must be ${length} bytes`, {
      details: { length: value.length },
    })
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

/** Constant-time comparison for equal lengths (a length mismatch returns early). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number)
  return diff === 0
}
