/**
 * The AccessController's grant id, computed off chain exactly as the contract does, so a
 * keyguard, an executor and a receiver name the same grant without a chain call.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { abiWord, leftPad32 } from './encoding/abi.ts'
import { addressToBytes } from './encoding/address.ts'
import { bytesArg, checkBytes, concatBytes } from './encoding/bytes.ts'
import { InvalidArgumentError } from './errors.ts'

/** What a grant id binds. Byte fields take bytes or `0x` hex; addresses also take EIP-55 text. */
export interface GrantIdParameters {
  chainId: bigint | number
  accessController: string | Uint8Array
  capsuleId: string | Uint8Array
  executor: string | Uint8Array
  /** The run's ephemeral X25519 key. */
  ephemeralKey: string | Uint8Array
  /** The environment measurement the grant was made for. */
  measurement: string | Uint8Array
  /** The capsule's run count before the grant. */
  runIndex: bigint | number
}

function address(name: string, value: string | Uint8Array): Uint8Array {
  if (typeof value === 'string') return addressToBytes(value, name)
  checkBytes(name, value, 20)
  return value
}

function uint(name: string, value: bigint | number): bigint {
  const v = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 256n) {
    throw new InvalidArgumentError(`${name} must be a uint256`, { details: { field: name } })
  }
  return v
}

/**
 * `keccak256(abi.encode(uint256 chainId, address accessController, bytes32 capsuleId, address
 * executor, bytes32 ephemeralKey, bytes32 measurement, uint256 runIndex))`.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or range.
 * @example
 * ```ts
 * const id = grantId({ chainId: 31337n, accessController, capsuleId, executor, ephemeralKey, measurement, runIndex: 0n })
 * ```
 */
export function grantId(p: GrantIdParameters): Uint8Array {
  return keccak_256(
    concatBytes(
      abiWord(uint('chainId', p.chainId)),
      leftPad32(address('accessController', p.accessController)),
      bytesArg('capsuleId', p.capsuleId, 32),
      leftPad32(address('executor', p.executor)),
      bytesArg('ephemeralKey', p.ephemeralKey, 32),
      bytesArg('measurement', p.measurement, 32),
      abiWord(uint('runIndex', p.runIndex)),
    ),
  )
}
