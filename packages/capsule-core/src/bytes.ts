/** Small byte helpers shared inside the package (not exported from the index). */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { InvalidArgumentError } from './errors.ts'

/** A `0x`-prefixed hex string. */
export type Hex = `0x${string}`
/** A 20-byte Ethereum address as `0x` + 40 hex digits (EIP-55 checksummed on output). */
export type Address = `0x${string}`

const HEX_RE = /^0x(?:[0-9a-fA-F]{2})*$/
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/

export const utf8 = new TextEncoder()
export const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

export function toHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`
}

export function fromHex(name: string, value: string, length?: number): Uint8Array {
  if (typeof value !== 'string' || !HEX_RE.test(value)) {
    throw new InvalidArgumentError(`${name} must be a 0x-prefixed hex string`, {
      details: { got: typeof value },
    })
  }
  const out = new Uint8Array(Buffer.from(value.slice(2), 'hex'))
  if (length !== undefined && out.length !== length) {
    throw new InvalidArgumentError(`${name} must be ${length} bytes`, {
      details: { length: out.length },
    })
  }
  return out
}

/** Accepts bytes or a hex string; returns bytes of the given length. */
export function bytesArg(name: string, value: Uint8Array | string, length?: number): Uint8Array {
  if (typeof value === 'string') return fromHex(name, value, length)
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

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number)
  return diff === 0
}

/** EIP-55 checksum form of a 20-byte address. */
export function checksumAddress(bytes: Uint8Array): Address {
  const lower = Buffer.from(bytes).toString('hex')
  const hash = keccak_256(utf8.encode(lower))
  let out = '0x'
  for (let i = 0; i < 40; i++) {
    const nibble = ((hash[i >> 1] as number) >> (i % 2 === 0 ? 4 : 0)) & 0xf
    const c = lower[i] as string
    out += nibble >= 8 ? c.toUpperCase() : c
  }
  return out as Address
}

/**
 * Parses an address: all-lowercase, all-uppercase, or a valid EIP-55 checksum.
 * @throws {InvalidArgumentError} for anything else (a wrong checksum is a typo, not a style).
 */
export function addressBytes(name: string, value: string): Uint8Array {
  if (typeof value !== 'string' || !ADDRESS_RE.test(value)) {
    throw new InvalidArgumentError(`${name} must be a 0x-prefixed 20-byte hex address`, {
      details: { got: typeof value === 'string' ? `${value.length} chars` : typeof value },
    })
  }
  const body = value.slice(2)
  const bytes = new Uint8Array(Buffer.from(body, 'hex'))
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase()
  if (mixed && checksumAddress(bytes) !== value) {
    throw new InvalidArgumentError(`${name} has a wrong EIP-55 checksum`, {
      details: { address: value },
    })
  }
  return bytes
}

/** Normalises an address string to its EIP-55 form. */
export function normalizeAddress(name: string, value: string): Address {
  return checksumAddress(addressBytes(name, value))
}
