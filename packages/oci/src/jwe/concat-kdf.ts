/**
 * The Concat KDF of NIST SP 800-56A §5.8.1 with SHA-256, as RFC 7518 §4.6.2 uses it for
 * ECDH-ES: OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo (each 32-bit length-prefixed)
 * ‖ SuppPubInfo (key length in bits, 32-bit big endian).
 */
import { createHash } from 'node:crypto'

function lengthPrefixed(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + bytes.length)
  out.writeUInt32BE(bytes.length, 0)
  out.set(bytes, 4)
  return out
}

/** Derives `keyLength` bytes from the shared secret `z` for `algorithm` ("ECDH-ES+A256KW"). */
export function concatKdf(
  z: Uint8Array,
  algorithm: string,
  keyLength: number,
  partyU: Uint8Array = new Uint8Array(0),
  partyV: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const suppPub = Buffer.alloc(4)
  suppPub.writeUInt32BE(keyLength * 8, 0)
  const otherInfo = Buffer.concat([
    lengthPrefixed(new TextEncoder().encode(algorithm)),
    lengthPrefixed(partyU),
    lengthPrefixed(partyV),
    suppPub,
  ])
  const out = Buffer.alloc(Math.ceil(keyLength / 32) * 32)
  for (let round = 1; round * 32 <= out.length; round++) {
    const counter = Buffer.alloc(4)
    counter.writeUInt32BE(round, 0)
    createHash('sha256')
      .update(counter)
      .update(z)
      .update(otherInfo)
      .digest()
      .copy(out, (round - 1) * 32)
  }
  return new Uint8Array(out.subarray(0, keyLength))
}
