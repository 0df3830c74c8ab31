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
import { type Address, recoverDigestSigner, toHex } from '@digicap/capsule-core'
import { secp256k1 } from '@noble/curves/secp256k1.js'

const Point = secp256k1.Point
type Point = InstanceType<typeof Point>
const Fn = Point.Fn
const N = Fn.ORDER
const HALF_N = N >> 1n

/** Public keys kept, by address (each up to ~400 KiB once it has its table). */
export const SIGNER_KEYS_KEPT = 64
/** Answered (digest, signature) pairs kept. */
export const SIGNATURES_KEPT = 4096
/** Checks of one key before it gets a precomputed table (window 8: ~80 ms to build). */
const TABLE_AFTER = 4

interface Key {
  point: Point
  /** The checksummed address, as a recovery spells it. */
  address: Address
  uses: number
}

const keys = new Map<string, Key>()
const answered = new Map<string, Address>()

function remember<V>(map: Map<string, V>, key: string, value: V, limit: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > limit) map.delete(map.keys().next().value as string)
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(toHex(bytes))
}

/** True exactly when recovering `signature` over `digest` gives `key.point`. */
function recoversTo(key: Key, digest: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 65 || digest.length !== 32) return false
  const v = signature[64] as number
  if (v !== 27 && v !== 28) return false
  const r = toBigInt(signature.subarray(0, 32))
  const s = toBigInt(signature.subarray(32, 64))
  // recoverDigestSigner refuses r or s outside [1, n−1] and a high s.
  if (r === 0n || r >= N || s === 0n || s > HALF_N) return false
  const z = Fn.create(toBigInt(digest))
  const w = Fn.inv(s)
  const u1 = Fn.mul(z, w)
  const u2 = Fn.mul(r, w)
  if (++key.uses === TABLE_AFTER) key.point.precompute(8)
  const R =
    key.uses >= TABLE_AFTER
      ? Point.BASE.multiplyUnsafe(u1).add(key.point.multiplyUnsafe(u2))
      : Point.BASE.mulAddUnsafe(u1, key.point, u2)
  if (R.is0()) return false
  const { x, y } = R.toAffine()
  return x === r && (y & 1n) === BigInt(v - 27)
}

/** The public key a signature recovers to over `digest` (it is known to be valid). */
function learn(digest: Uint8Array, signature: Uint8Array): Point {
  const recovered = new Uint8Array(65)
  recovered[0] = (signature[64] as number) - 27
  recovered.set(signature.subarray(0, 64), 1)
  return Point.fromBytes(secp256k1.recoverPublicKey(recovered, digest, { prehash: false }))
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
  const want = expected?.toLowerCase()
  const key = want === undefined ? undefined : keys.get(want)
  let signer: Address
  if (key !== undefined && recoversTo(key, digest, signature)) {
    signer = key.address
  } else {
    signer = recoverDigestSigner(digest, signature)
    if (want !== undefined && key === undefined && signer.toLowerCase() === want) {
      remember(
        keys,
        want,
        { point: learn(digest, signature), address: signer, uses: 0 },
        SIGNER_KEYS_KEPT,
      )
    }
  }
  if (id !== undefined) remember(answered, id, signer, SIGNATURES_KEPT)
  return signer
}
