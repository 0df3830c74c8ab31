/** The recovery key's id: its own module, light, for the owner file's reading (ADR 0051). */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'

/** Lowercase hex SHA-256 of an X25519 public key. */
export function recoveryKeyId(publicKey: Uint8Array): string {
  return bytesToHex(sha256(publicKey))
}
