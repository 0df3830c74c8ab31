/**
 * Who signed a digest, as `ecrecover` (and capsule-core's `recoverDigestSigner`) answers, with
 * two shortcuts that cannot change the answer:
 *
 * - a bounded cache of (digest, signature) pairs already answered (a view change's proof repeats
 *   votes the member checked when they arrived);
 * - when the caller names the signer it expects and that member's public key Q is known from an
 *   earlier recovery, the check `R = (z/s)·G + (r/s)·Q` with `R.x = r` and `R.y`'s parity = v − 27
 *   in place of a recovery. That equation holds exactly when recovering (r, s, v) over z gives Q,
 *   so it answers "the expected member" in the same cases, and falls back to a full recovery
 *   otherwise. Q gets a precomputed multiplication table once it has been used a few times
 *   (a recurring committee member), which makes the check about three times cheaper.
 */
import { type Address, checksumAddress, recoverDigestSigner, toHex } from '@digicap/capsule-core'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'

const Point = secp256k1.Point
type Point = InstanceType<typeof Point>
const Fn = Point.Fn
const N = Fn.ORDER
const HALF_N = N >> 1n

/** Public keys kept, by address (each a few KiB once it has its table). */
export const SIGNER_KEYS_KEPT = 64
/** Answered (digest, signature) pairs kept. */
export const SIGNATURES_KEPT = 4096
/** Checks of one key before it gets a precomputed table. */
const TABLE_AFTER = 4
/**
 * The table's window. Measured with noble 2.4 (ADR 0047): window 4 builds in ~8 ms and makes a
 * check ~0.7 ms (1.3–1.6 ms without a table); window 8 builds in 55–110 ms for no faster check.
 */
const TABLE_WINDOW = 4

interface Key {
  point: Point
  /** The checksummed address, as a recovery spells it. */
  address: Address
  uses: number
}

const keys = new Map<string, Key>()
const answered = new Map<string, Address>()
let checks = 0

/**
 * Signature checks this process computed so far (known-key checks and recoveries; a cached
 * answer is not one): what a member pays for signatures, for tests and the bench.
 */
export function signatureChecks(): number {
  return checks
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

/** True exactly when recovering `signature` over `digest` gives `key.point`. */
function recoversTo(key: Key, digest: Uint8Array, signature: Uint8Array): boolean {
  const parts = digest.length === 32 ? partsOf(signature) : undefined
  if (parts === undefined) return false
  const { r, s, v } = parts
  const z = Fn.create(toBigInt(digest))
  const w = Fn.inv(s)
  const u1 = Fn.mul(z, w)
  const u2 = Fn.mul(r, w)
  if (++key.uses === TABLE_AFTER) key.point.precompute(TABLE_WINDOW)
  const R =
    key.uses >= TABLE_AFTER
      ? Point.BASE.multiplyUnsafe(u1).add(key.point.multiplyUnsafe(u2))
      : Point.BASE.mulAddUnsafe(u1, key.point, u2)
  if (R.is0()) return false
  const { x, y } = R.toAffine()
  return x === r && (y & 1n) === BigInt(v - 27)
}

/**
 * The key `signature` recovers to over `digest` and its address, as `recoverDigestSigner`
 * computes them (one recovery gives both); undefined when it does not recover (the caller then
 * asks `recoverDigestSigner` for its typed error).
 */
function learn(digest: Uint8Array, signature: Uint8Array): Key | undefined {
  if (digest.length !== 32 || partsOf(signature) === undefined) return undefined
  const recovered = new Uint8Array(65)
  recovered[0] = (signature[64] as number) - 27
  recovered.set(signature.subarray(0, 64), 1)
  try {
    const point = Point.fromBytes(secp256k1.recoverPublicKey(recovered, digest, { prehash: false }))
    const address = checksumAddress(keccak_256(point.toBytes(false).subarray(1)).subarray(12))
    return { point, address, uses: 0 }
  } catch {
    return undefined
  }
}

/**
 * The address that signed `digest` (EIP-712 `r ‖ s ‖ v`, low s). `expected` only makes the
 * answer cheaper to reach.
 *
 * @throws {CapsuleSignatureError} for a malformed or high-s signature (as `recoverDigestSigner`).
 */
export function recoverSigner(
  digest: Uint8Array,
  signature: Uint8Array,
  expected?: Address,
): Address {
  const id = signature instanceof Uint8Array ? toHex(digest) + toHex(signature) : undefined
  const known = id === undefined ? undefined : answered.get(id)
  if (known !== undefined) return known
  checks++
  const want = expected?.toLowerCase()
  const key = want === undefined ? undefined : keys.get(want)
  let signer: Address
  const learnt = want !== undefined && key === undefined ? learn(digest, signature) : undefined
  if (key !== undefined && recoversTo(key, digest, signature)) {
    signer = key.address
  } else if (learnt !== undefined) {
    signer = learnt.address
    if (signer.toLowerCase() === want) remember(keys, want, learnt, SIGNER_KEYS_KEPT)
  } else {
    signer = recoverDigestSigner(digest, signature)
  }
  if (id !== undefined) remember(answered, id, signer, SIGNATURES_KEPT)
  return signer
}
