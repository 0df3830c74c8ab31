/**
 * The one byte helper the codecs and the EIP-712 mapping share (internal: not exported from the
 * package face). Hex, ABI words, concatenation and comparison come from capsule-core.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'

/**
 * `value` when it is a Uint8Array of exactly `length` bytes.
 *
 * @throws {InvalidArgumentError} naming the field otherwise.
 */
export function checkBytes(name: string, value: unknown, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new InvalidArgumentError(`${name} must be a ${length}-byte Uint8Array`, {
      details: { field: name },
    })
  }
  return value
}
