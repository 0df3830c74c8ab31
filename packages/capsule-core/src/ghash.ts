/**
 * GHASH arithmetic for one job: changing a finished AES-GCM tag from one AAD to another of
 * the same length, without touching the ciphertext (NIST SP 800-38D §6.4, §7.1).
 *
 * The tag is `E_K(J0) ⊕ GHASH_H(A ‖ C ‖ len(A) ‖ len(C))`, and GHASH is linear: with
 * `u` AAD blocks and `v` ciphertext blocks, AAD block `A_j` enters as `A_j · H^(u+v+2−j)`.
 * So for two AADs of equal length the tags differ by
 * `GHASH_H(A ⊕ A′) · H^(v+1)` (GHASH over the AAD blocks alone, no length block), which
 * depends on the key, the AAD difference and the ciphertext length only.
 *
 * `commitAndSealFile` uses it to encrypt and hash the plaintext in one pass: chunks are
 * sealed with a zero AAD while the commitment is computed, and each tag is corrected once
 * the header, and so its hash, is known. The corrected tags are exactly those of sealing
 * with the header hash from the start.
 */
import { createCipheriv } from 'node:crypto'

const BLOCK = 16
/** The GCM reduction constant, R = 11100001 ‖ 0^120, in GCM's bit order. */
const R = 0xe1n << 120n

function toBigInt(bytes: Uint8Array, offset = 0): bigint {
  let x = 0n
  for (let i = 0; i < BLOCK; i++) x = (x << 8n) | BigInt(bytes[offset + i] ?? 0)
  return x
}

function toBytes(x: bigint): Uint8Array {
  const out = new Uint8Array(BLOCK)
  for (let i = BLOCK - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn)
    x >>= 8n
  }
  return out
}

/** Multiplication in GF(2^128) as GCM defines it (SP 800-38D Algorithm 1). */
export function gfMultiply(x: bigint, y: bigint): bigint {
  let z = 0n
  let v = y
  for (let i = 127n; i >= 0n; i--) {
    if ((x >> i) & 1n) z ^= v
    v = v & 1n ? (v >> 1n) ^ R : v >> 1n
  }
  return z
}

function gfPower(h: bigint, e: number): bigint {
  // The multiplicative identity in GCM's bit order is the block 10…0.
  let result = 1n << 127n
  let base = h
  for (let n = e; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = gfMultiply(result, base)
    base = gfMultiply(base, base)
  }
  return result
}

/** The GHASH key of an AES-256 key: `H = AES_K(0^128)`. */
export function ghashKey(key: Uint8Array): Uint8Array {
  const ecb = createCipheriv('aes-256-ecb', key, null)
  ecb.setAutoPadding(false)
  return new Uint8Array(ecb.update(new Uint8Array(BLOCK)))
}

/**
 * What to XOR into a GCM tag computed over a ciphertext of `ciphertextLength` bytes to move
 * it from AAD `from` to AAD `to` (same length). The result depends on the key through `h`
 * ({@link ghashKey}), so it reveals nothing without the key.
 */
export function gcmTagDelta(
  h: Uint8Array,
  from: Uint8Array,
  to: Uint8Array,
  ciphertextLength: number,
): Uint8Array {
  if (from.length !== to.length) throw new RangeError('the two AADs must have the same length')
  const hx = toBigInt(h)
  const padded = new Uint8Array(Math.ceil(from.length / BLOCK) * BLOCK)
  for (let i = 0; i < from.length; i++) padded[i] = (from[i] as number) ^ (to[i] as number)
  let x = 0n
  for (let o = 0; o < padded.length; o += BLOCK) x = gfMultiply(x ^ toBigInt(padded, o), hx)
  const v = Math.ceil(ciphertextLength / BLOCK)
  return toBytes(gfMultiply(x, gfPower(hx, v + 1)))
}
