/**
 * A P-256 key that signs a digest as given (ECDSA without hashing again), as the owner's
 * authorizing key does: node:crypto only signs what it hashes itself, so k·G comes from ECDH
 * and the rest is modular arithmetic (SEC 1 §4.1.3). Test-only: k is random, not constant time.
 */
import { createECDH, randomBytes } from 'node:crypto'
import type { P256PublicKey } from '../../src/index.ts'

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n

const toBig = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`)
const to32 = (v: bigint) => new Uint8Array(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'))

function inverse(a: bigint, m: bigint): bigint {
  let [r0, r1, t0, t1] = [m, ((a % m) + m) % m, 0n, 1n]
  while (r1 !== 0n) {
    const q = r0 / r1
    ;[r0, r1] = [r1, r0 - q * r1]
    ;[t0, t1] = [t1, t0 - q * t1]
  }
  return ((t0 % m) + m) % m
}

/** The x coordinate of k·G (uncompressed point from ECDH). */
function pointX(k: bigint): { x: Uint8Array; y: Uint8Array } {
  const ecdh = createECDH('prime256v1')
  ecdh.setPrivateKey(to32(k))
  const point = ecdh.getPublicKey()
  return { x: new Uint8Array(point.subarray(1, 33)), y: new Uint8Array(point.subarray(33, 65)) }
}

function randomScalar(): bigint {
  for (;;) {
    const k = toBig(randomBytes(32))
    if (k > 0n && k < N) return k
  }
}

export interface TestP256Key {
  publicKey: P256PublicKey
  sign(digest: Uint8Array): { r: Uint8Array; s: Uint8Array }
}

export function testP256Key(): TestP256Key {
  const d = randomScalar()
  return {
    publicKey: pointX(d),
    sign(digest) {
      const e = toBig(digest)
      for (;;) {
        const k = randomScalar()
        const r = toBig(pointX(k).x) % N
        if (r === 0n) continue
        const s = (inverse(k, N) * (e + r * d)) % N
        if (s === 0n) continue
        return { r: to32(r), s: to32(s) }
      }
    },
  }
}
