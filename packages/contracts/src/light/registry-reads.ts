/**
 * The chain reads a run and a receiver make, in ABI words by hand: `AccessController.getGrant`
 * and `runCount`, `CapsuleRegistry.getCapsule`. One copy for the executor (a one-shot run reads
 * them without loading ethers' ABI coder, ADR 0052, 0073) and the SDK's receiver (no ethers on
 * the receive path). The selectors are checked against the contracts' ABI (executor
 * test/grant-abi.test.ts, test/capsule-abi.test.ts); the decoders refuse anything but a
 * well-formed answer, and the caller counts a refusal as that RPC's failure.
 */
import { hexToBytes, toHex } from '@digicap/capsule-core/light'

/** `getGrant(bytes32)`. */
export const GET_GRANT_SELECTOR = '0xe483ac04'
/** `runCount(bytes32)`. */
export const RUN_COUNT_SELECTOR = '0xd27ac3c3'
/** The `GrantNotFound(bytes32)` revert. */
export const GRANT_NOT_FOUND_SELECTOR = '0x90750d19'
/** `getCapsule(bytes32)`. */
export const GET_CAPSULE_SELECTOR = '0xb0e20dc9'
/** The `CapsuleNotFound(bytes32)` revert. */
export const CAPSULE_NOT_FOUND_SELECTOR = '0x4b211351'

/** A malformed `getGrant` / `runCount` answer. */
export class GrantAbiError extends Error {
  override name = 'GrantAbiError'
}

/** A malformed `getCapsule` answer. */
export class CapsuleAbiError extends Error {
  override name = 'CapsuleAbiError'
}

/** A grant as `getGrant` answers it (the fields a result's check needs). */
export interface DecodedGrant {
  /** 20 bytes. */
  executor: Uint8Array
  runIndex: bigint
  capsuleId: Uint8Array
  ephemeralKey: Uint8Array
}

/** A capsule as `getCapsule` answers it (the fields its readers need). Addresses lower-case. */
export interface DecodedCapsule {
  readonly owner: string
  readonly policy: string
  readonly cid: string
  readonly revoked: boolean
  /** 32 bytes. */
  readonly plaintextHash: Uint8Array
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

/** The `eth_call` data asking for `capsuleId` (32 bytes). */
export const getCapsuleCallData = (capsuleId: Uint8Array): string =>
  callData(GET_CAPSULE_SELECTOR, capsuleId, 'capsuleId')

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
export function decodeGetGrant(hex: string): DecodedGrant {
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

const WORD = 32
// The struct's head: policy, registeredAt, revoked, runs, owner, plaintextHash, keyguardKeyId,
// then the offsets of cid (string) and keyguardPeerId (bytes).
const CAPSULE_HEAD_WORDS = 9
/** The registry's longest CID (`MAX_CID_LENGTH`, 128), with room to spare. */
const MAX_CID_BYTES = 256

/**
 * Decodes `getCapsule`'s answer (one dynamic tuple, whole words). Addresses come lower-case.
 * @throws {CapsuleAbiError} for an answer that is not that tuple.
 */
export function decodeGetCapsule(hex: string): DecodedCapsule {
  if (!/^0x([0-9a-fA-F]{64})*$/.test(hex)) throw new CapsuleAbiError('not hex words')
  const b = hexToBytes(hex)
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const word = (at: number) => {
    if (at < 0 || at + WORD > b.length) throw new CapsuleAbiError('answer too short')
    return b.subarray(at, at + WORD)
  }
  // A small whole number in one word (offsets, lengths): the high 24 bytes must be zero.
  const small = (at: number) => {
    const w = word(at)
    if (w.subarray(0, 24).some((x) => x !== 0)) throw new CapsuleAbiError('offset out of range')
    return Number(view.getBigUint64(at + 24))
  }
  const address = (at: number) => {
    const w = word(at)
    if (w.subarray(0, 12).some((x) => x !== 0)) throw new CapsuleAbiError('not an address')
    return toHex(w.subarray(12))
  }
  const bool = (at: number) => {
    const n = small(at)
    if (n > 1) throw new CapsuleAbiError('not a bool')
    return n === 1
  }
  const base = small(0)
  word(base + (CAPSULE_HEAD_WORDS - 1) * WORD)
  const cidAt = base + small(base + 7 * WORD)
  const cidLength = small(cidAt)
  if (cidLength > MAX_CID_BYTES) throw new CapsuleAbiError('cid too long')
  if (cidAt + WORD + cidLength > b.length) throw new CapsuleAbiError('string out of range')
  let cid: string
  try {
    cid = new TextDecoder('utf-8', { fatal: true }).decode(
      b.subarray(cidAt + WORD, cidAt + WORD + cidLength),
    )
  } catch {
    throw new CapsuleAbiError('cid is not UTF-8')
  }
  return {
    policy: address(base),
    revoked: bool(base + 2 * WORD),
    owner: address(base + 4 * WORD),
    plaintextHash: word(base + 5 * WORD).slice(),
    cid,
  }
}
