/** Ethereum addresses: EIP-55 checksums and a parser that refuses a wrong checksum. */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { InvalidArgumentError } from '../errors.ts'
import { checkBytes, utf8 } from './bytes.ts'

/** A 20-byte Ethereum address as `0x` + 40 hex digits (EIP-55 checksummed on output). */
export type Address = `0x${string}`

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/

/**
 * EIP-55 checksum form of a 20-byte address.
 *
 * @throws {InvalidArgumentError} if `bytes` is not 20 bytes.
 * @example
 * ```ts
 * checksumAddress(addressToBytes('0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359'))
 * // '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359'
 * ```
 */
export function checksumAddress(bytes: Uint8Array): Address {
  checkBytes('address', bytes, 20)
  const lower = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
  const hash = keccak_256(utf8.encode(lower))
  let out = '0x'
  for (let i = 0; i < 40; i++) {
    const nibble = ((hash[i >> 1] as number) >> (i % 2 === 0 ? 4 : 0)) & 0xf
    const c = lower[i] as string
    out += nibble >= 8 ? c.toUpperCase() : c
  }
  return out as Address
}

/** True for `0x` + 40 hex digits that is all-lowercase, all-uppercase or correctly checksummed. */
export function isAddress(value: unknown): value is Address {
  if (typeof value !== 'string' || !ADDRESS_RE.test(value)) return false
  const body = value.slice(2)
  if (body === body.toLowerCase() || body === body.toUpperCase()) return true
  return checksumAddress(new Uint8Array(Buffer.from(body, 'hex'))) === value
}

/**
 * The 20 bytes of an address: all-lowercase, all-uppercase, or a valid EIP-55 checksum.
 *
 * @throws {InvalidArgumentError} for anything else (a wrong checksum is a typo, not a style).
 */
export function addressToBytes(value: string, name = 'address'): Uint8Array {
  if (typeof value !== 'string' || !ADDRESS_RE.test(value)) {
    throw new InvalidArgumentError(`${name} must be a 0x-prefixed 20-byte hex address`, {
      details: {
        field: name,
        got: typeof value === 'string' ? `${value.length} chars` : typeof value,
      },
    })
  }
  if (!isAddress(value)) {
    throw new InvalidArgumentError(`${name} has a wrong EIP-55 checksum`, {
      details: { field: name, address: value },
      hint: 'Copy the address again, or pass it all lowercase to skip the checksum.',
    })
  }
  return new Uint8Array(Buffer.from(value.slice(2), 'hex'))
}

/**
 * An address in its EIP-55 form.
 *
 * @throws {InvalidArgumentError} as {@link addressToBytes}.
 */
export function normalizeAddress(value: string, name = 'address'): Address {
  return checksumAddress(addressToBytes(value, name))
}
