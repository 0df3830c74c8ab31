/**
 * Who signed a digest, as `ecrecover` (and capsule-core's `recoverDigestSigner`) answers, with
 * two shortcuts that cannot change the answer:
 *
 * - a bounded cache of (digest, signature) pairs already answered (a view change's proof repeats
 *   votes the member checked when they arrived);
 * - the recovery itself in libsecp256k1 (`tiny-secp256k1`, WebAssembly; ADR 0098) instead of
 *   noble's JavaScript: ~240 µs against ~700 µs for noble's known-key check and 1.3–1.6 ms for
 *   its recovery, on the path every observation and counted vote takes. Only signatures of the
 *   shape `ecrecover` accepts get there (65 bytes, v 27/28, r and s in [1, n − 1], low s): that
 *   shape is checked here first, so both libraries see the same inputs, and anything the
 *   WebAssembly recovery refuses is answered by `recoverDigestSigner` (its typed error).
 */
import { type Address, checksumAddress, recoverDigestSigner, toHex } from '@digicap/capsule-core'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recover } from 'tiny-secp256k1'

const N = secp256k1.Point.Fn.ORDER
const HALF_N = N >> 1n

/** Answered (digest, signature) pairs kept. */
export const SIGNATURES_KEPT = 4096
const answered = new Map<string, Address>()
let checks = 0
let fallbacks = 0

/**
 * Signature checks this process computed so far (recoveries; a cached answer is not one): what a
 * member pays for signatures, for tests and the bench.
 */
export function signatureChecks(): number {
  return checks
}

/**
 * Checks answered by `recoverDigestSigner` because libsecp256k1 gave no key (a signature of the
 * wrong shape, or one that does not recover): for tests, which show that valid signatures never
 * take that way.
 */
export function nobleFallbacks(): number {
  return fallbacks
}

function remember<V>(map: Map<string, V>, key: string, value: V, limit: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > limit) map.delete(map.keys().next().value as string)
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(toHex(bytes))
}

interface Parts {
  r: bigint
  s: bigint
  v: number
}

/** r, s and v of a signature `ecrecover` and `recoverDigestSigner` may accept, or undefined. */
function partsOf(signature: Uint8Array): Parts | undefined {
  if (!(signature instanceof Uint8Array) || signature.length !== 65) return undefined
  const v = signature[64] as number
  if (v !== 27 && v !== 28) return undefined
  const r = toBigInt(signature.subarray(0, 32))
  const s = toBigInt(signature.subarray(32, 64))
  // recoverDigestSigner refuses r or s outside [1, n−1] and a high s.
  if (r === 0n || r >= N || s === 0n || s > HALF_N) return undefined
  return { r, s, v }
}

/**
 * True when `signature` has the shape of a signature that can recover (65 bytes, v 27/28, r and
 * s in range, low s): no curve arithmetic, so a counted vote's obvious forgeries are refused on
 * arrival. A signature of this shape may still not be its member's (ADR 0047).
 */
export function signatureShapeHolds(signature: Uint8Array): boolean {
  return partsOf(signature) !== undefined
}

/** The address `signature` recovers to over `digest`, or undefined when it does not recover. */
function recovered(digest: Uint8Array, signature: Uint8Array): Address | undefined {
  const parts = digest.length === 32 ? partsOf(signature) : undefined
  if (parts === undefined) return undefined
  try {
    const key = recover(digest, signature.subarray(0, 64), (parts.v - 27) as 0 | 1, false)
    return key === null ? undefined : checksumAddress(keccak_256(key.subarray(1)).subarray(12))
  } catch {
    return undefined
  }
}

/**
 * The address that signed `digest` (EIP-712 `r ‖ s ‖ v`, low s).
 *
 * @throws {CapsuleSignatureError} for a malformed or high-s signature (as `recoverDigestSigner`).
 */
export function recoverSigner(digest: Uint8Array, signature: Uint8Array): Address {
  const id = signature instanceof Uint8Array ? toHex(digest) + toHex(signature) : undefined
  const known = id === undefined ? undefined : answered.get(id)
  if (known !== undefined) return known
  checks++
  let signer = recovered(digest, signature)
  if (signer === undefined) {
    fallbacks++
    signer = recoverDigestSigner(digest, signature)
  }
  if (id !== undefined) remember(answered, id, signer, SIGNATURES_KEPT)
  return signer
}
