import { randomBytes } from 'node:crypto'
import { generateX25519KeyPair } from '@digicap/capsule-core'

/**
 * A fresh X25519 key pair for receiving results: name `publicKey` in a capsule's receivers,
 * keep `privateKey` (results are sealed to it; without it they cannot be opened).
 */
export function generateReceiverKey(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  return generateX25519KeyPair()
}

/** A fresh 32-byte seed for a libp2p identity (a stable peer id across restarts when kept). */
export function generateIdentity(): Uint8Array {
  return new Uint8Array(randomBytes(32))
}
