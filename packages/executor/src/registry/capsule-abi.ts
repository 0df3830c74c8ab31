/**
 * `CapsuleRegistry.getCapsule(bytes32)` in ABI words, by hand: the one registry read of a run
 * (the verify stage) without ethers' ABI coder, which a one-shot run would otherwise load at
 * start (ADR 0052). The selectors are checked against the contracts' ABI in
 * test/capsule-abi.test.ts; the decoder refuses anything but a well-formed answer.
 */
import { hexToBytes, toHex } from '@digicap/capsule-core/light'
import type { RegisteredCapsule } from '../chain.ts'

/** `getCapsule(bytes32)`. */
export const GET_CAPSULE_SELECTOR = '0xb0e20dc9'
/** The `CapsuleNotFound(bytes32)` revert. */
export const CAPSULE_NOT_FOUND_SELECTOR = '0x4b211351'

/** The `eth_call` data asking for `capsuleId` (32 bytes). */
export function getCapsuleCallData(capsuleId: Uint8Array): string {
  if (capsuleId.length !== 32) throw new TypeError('capsuleId must be 32 bytes')
  return `${GET_CAPSULE_SELECTOR}${toHex(capsuleId).slice(2)}`
}

/** A malformed answer: the caller counts it as that RPC's failure. */
export class CapsuleAbiError extends Error {
  override name = 'CapsuleAbiError'
}

const WORD = 32
// The struct's head: policy, registeredAt, revoked, runs, owner, plaintextHash, keyguardKeyId,
// then the offsets of cid (string) and keyguardPeerId (bytes).
const HEAD_WORDS = 9

/**
 * Decodes `getCapsule`'s answer (one dynamic tuple). Addresses come lower-case.
 * @throws {CapsuleAbiError} for an answer that is not that tuple.
 */
export function decodeGetCapsule(hex: string): RegisteredCapsule {
  if (!/^0x([0-9a-fA-F]{2})*$/.test(hex)) throw new CapsuleAbiError('not hex')
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
  word(base + (HEAD_WORDS - 1) * WORD)
  const cidAt = base + small(base + 7 * WORD)
  const cidLength = small(cidAt)
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
