/** The 32-byte words of Solidity's ABI encoding that EIP-712 and the contracts' ids hash. */
import { InvalidArgumentError } from '../errors.ts'

const MIN_INT256 = -(1n << 255n)
const UINT256_END = 1n << 256n

/**
 * One 32-byte big-endian ABI word: an unsigned integer, or a negative one in two's complement.
 *
 * @throws {InvalidArgumentError} for a value outside int256 ∪ uint256.
 * @example
 * ```ts
 * abiWord(31337n) // 32 bytes, ending 0x7a 0x69
 * ```
 */
export function abiWord(n: bigint): Uint8Array {
  if (typeof n !== 'bigint' || n < MIN_INT256 || n >= UINT256_END) {
    throw new InvalidArgumentError('ABI word out of range', {
      details: { got: typeof n === 'bigint' ? `${n.toString(16).length * 4} bits` : typeof n },
    })
  }
  const out = new Uint8Array(32)
  let v = BigInt.asUintN(256, n)
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

/**
 * Bytes of at most 32 left-padded with zeros to one ABI word (an address).
 *
 * @throws {InvalidArgumentError} for more than 32 bytes.
 */
export function leftPad32(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length > 32) {
    throw new InvalidArgumentError('leftPad32 takes at most 32 bytes')
  }
  const out = new Uint8Array(32)
  out.set(bytes, 32 - bytes.length)
  return out
}
