/**
 * Solidity ABI encoding of a call's parameters, for the types the light entry sends (the
 * capsule registration and a policy's constructor): no ethers to load for two calls.
 */
import { abiWord, addressToBytes, concatBytes, leftPad32 } from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** One parameter: its ABI type and value. */
export type AbiParam =
  | { readonly type: 'bytes32'; readonly value: Uint8Array }
  | { readonly type: 'address'; readonly value: string }
  | { readonly type: 'uint256'; readonly value: bigint }
  | { readonly type: 'bytes'; readonly value: Uint8Array }
  | { readonly type: 'string'; readonly value: string }

const WORD = 32

/** `bytes` right-padded with zeros to whole words. */
function padRight(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.length / WORD) * WORD)
  out.set(bytes)
  return out
}

/** The head word of a static parameter. */
function staticWord(p: AbiParam): Uint8Array {
  switch (p.type) {
    case 'bytes32':
      if (p.value.length !== WORD) throw new RangeError('bytes32 takes exactly 32 bytes')
      return p.value
    case 'address':
      return leftPad32(addressToBytes(p.value))
    case 'uint256':
      if (p.value < 0n) throw new RangeError('uint256 takes a non-negative value')
      return abiWord(p.value)
    default:
      throw new RangeError(`${p.type} is not a static type`)
  }
}

/**
 * The ABI encoding of `params` (what follows a function selector, or a constructor's
 * arguments after the creation bytecode).
 *
 * @example
 * ```ts
 * abiEncodeParams([{ type: 'address', value: nodeRegistry }]) // 32 bytes
 * ```
 */
export function abiEncodeParams(params: readonly AbiParam[]): Uint8Array {
  const heads: Uint8Array[] = []
  const tails: Uint8Array[] = []
  let tailOffset = params.length * WORD // where the next dynamic value's tail starts
  for (const p of params) {
    if (p.type === 'bytes' || p.type === 'string') {
      const bytes = p.type === 'string' ? new TextEncoder().encode(p.value) : p.value
      const tail = new Uint8Array(WORD + Math.ceil(bytes.length / WORD) * WORD)
      tail.set(abiWord(BigInt(bytes.length)))
      tail.set(padRight(bytes), WORD)
      heads.push(abiWord(BigInt(tailOffset)))
      tails.push(tail)
      tailOffset += tail.length
    } else {
      heads.push(staticWord(p))
    }
  }
  return concatBytes(...heads, ...tails)
}

/** The 4-byte selector of a function signature such as `register(bytes32,address)`. */
export function functionSelector(signature: string): Uint8Array {
  return keccak_256(new TextEncoder().encode(signature)).subarray(0, 4)
}
