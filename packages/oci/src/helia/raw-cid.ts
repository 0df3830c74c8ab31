/**
 * The CIDv1 of a blob stored as one raw block: codec raw (0x55), multihash sha2-256 (0x12,
 * 32 bytes) of the blob, so the OCI digest and the CID name the same hash. With the UnixFS
 * profile of `@digicap/p2p` this is the CID of every blob of at most one chunk (1 MiB).
 */
import { checkDigest } from '../encoding.ts'

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

function base32(bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31]
  return out
}

/** `b…` (multibase base32) CIDv1 raw/sha2-256 of an OCI `sha256:` digest. */
export function rawCidOfDigest(digest: string): string {
  const hex = checkDigest(digest, 'digest').slice('sha256:'.length)
  return `b${base32(Uint8Array.from([0x01, 0x55, 0x12, 0x20, ...Buffer.from(hex, 'hex')]))}`
}
