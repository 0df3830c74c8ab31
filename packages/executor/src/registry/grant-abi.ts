/**
 * `AccessController.getGrant(bytes32)` and `runCount(bytes32)` in ABI words, by hand: the reads a
 * fast-path run makes to find the grant id its audit was recorded under (ADR 0073), without
 * ethers' ABI coder, which a one-shot run would otherwise load for them (ADR 0052). The selectors
 * are checked against the contracts' ABI in test/grant-abi.test.ts; the decoders refuse anything
 * but a well-formed answer.
 */
import { hexToBytes, toHex } from '@digicap/capsule-core/light'
import type { GrantRecord } from '@digicap/protocol'

/** `getGrant(bytes32)`. */
export const GET_GRANT_SELECTOR = '0xe483ac04'
/** `runCount(bytes32)`. */
export const RUN_COUNT_SELECTOR = '0xd27ac3c3'
/** The `GrantNotFound(bytes32)` revert. */
export const GRANT_NOT_FOUND_SELECTOR = '0x90750d19'

/** A malformed answer: the caller counts it as that RPC's failure. */
export class GrantAbiError extends Error {
  override name = 'GrantAbiError'
}

function callData(selector: string, id: Uint8Array, what: string): string {
  if (id.length !== 32) throw new TypeError(`${what} must be 32 bytes`)
  return `${selector}${toHex(id).slice(2)}`
}

/** The `eth_call` data asking for the grant `grantId` (32 bytes). */
export const getGrantCallData = (grantId: Uint8Array): string =>
  callData(GET_GRANT_SELECTOR, grantId, 'grantId')

/** The `eth_call` data asking for the run count of `capsuleId` (32 bytes). */
export const runCountCallData = (capsuleId: Uint8Array): string =>
  callData(RUN_COUNT_SELECTOR, capsuleId, 'capsuleId')

function words(hex: string, count: number): Uint8Array {
  if (!/^0x([0-9a-fA-F]{2})*$/.test(hex)) throw new GrantAbiError('not hex')
  const b = hexToBytes(hex)
  if (b.length !== count * 32)
    throw new GrantAbiError(`expected ${count} words, got ${b.length} bytes`)
  return b
}

/** A word whose top `32 - bytes` bytes must be zero (an address, a uint40, a bool). */
function low(b: Uint8Array, index: number, bytes: number): Uint8Array {
  const w = b.subarray(index * 32, index * 32 + 32)
  if (w.subarray(0, 32 - bytes).some((x) => x !== 0)) throw new GrantAbiError('value out of range')
  return w.subarray(32 - bytes)
}

const uint = (bytes: Uint8Array): bigint => (bytes.length === 0 ? 0n : BigInt(toHex(bytes)))

/**
 * Decodes `getGrant`'s answer: the static tuple (executor, runIndex, expiresAt, fastPath,
 * capsuleId, ephemeralKey), six words.
 * @throws {GrantAbiError} for an answer that is not that tuple.
 */
export function decodeGetGrant(hex: string): GrantRecord {
  const b = words(hex, 6)
  if (uint(low(b, 3, 1)) > 1n) throw new GrantAbiError('not a bool')
  low(b, 2, 5) // expiresAt: uint40
  return {
    executor: new Uint8Array(low(b, 0, 20)),
    runIndex: uint(low(b, 1, 5)),
    capsuleId: new Uint8Array(b.subarray(128, 160)),
    ephemeralKey: new Uint8Array(b.subarray(160, 192)),
  }
}

/**
 * Decodes `runCount`'s answer (one uint256).
 * @throws {GrantAbiError} for an answer that is not one word.
 */
export function decodeRunCount(hex: string): bigint {
  return uint(words(hex, 1))
}
