/** The address a contract creation gets (CREATE): no ethers, no receipt to trust. */
import { type Address, addressToBytes, checksumAddress, concatBytes } from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** RLP of a non-negative integer: the empty string for 0, else its big-endian bytes. */
function rlpInteger(n: bigint): Uint8Array {
  if (n === 0n) return Uint8Array.of(0x80)
  const hex = n.toString(16)
  const bytes = Uint8Array.from((hex.length % 2 ? `0${hex}` : hex).match(/../g) as string[], (b) =>
    Number.parseInt(b, 16),
  )
  return bytes.length === 1 && (bytes[0] as number) < 0x80
    ? bytes
    : concatBytes(Uint8Array.of(0x80 + bytes.length), bytes)
}

/**
 * The address of the contract that `from` creates with its transaction of `nonce`:
 * `keccak256(rlp([from, nonce]))[12:]`. Computed, not read from a receipt, so an RPC that lies
 * about the receipt cannot name another contract.
 *
 * @example
 * ```ts
 * const policy = createAddress(owner, mined.nonce)
 * ```
 */
export function createAddress(from: string, nonce: bigint): Address {
  if (nonce < 0n || nonce >= 2n ** 64n) throw new RangeError('A nonce is a uint64')
  const sender = addressToBytes(from, 'from')
  const items = concatBytes(Uint8Array.of(0x80 + 20), sender, rlpInteger(nonce))
  const list = concatBytes(Uint8Array.of(0xc0 + items.length), items)
  return checksumAddress(keccak_256(list).subarray(12))
}
