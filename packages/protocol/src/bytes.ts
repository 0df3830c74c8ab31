/**
 * The byte helpers the codecs and the EIP-712 / ABI encoders share (internal: not exported
 * from the package face).
 */

/** Constant-length comparison of two byte strings (public values only: not constant time). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** An unsigned integer as one 32-byte big-endian ABI word. */
export function abiWord(n: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let v = n
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

/** Bytes of at most 32 left-padded with zeros to one ABI word (addresses). */
export function leftPad32(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  out.set(bytes, 32 - bytes.length)
  return out
}

/** The parts one after another in a new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}
