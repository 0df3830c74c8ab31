/**
 * What wraps a capsule's data key to the keyguard. A keyguard's `Sealer` is one (on the Pi);
 * {@link publicKeyWrapper} is one built from the keyguard's public key alone (on a laptop).
 */
import type { SealerPublicKey, WrappedKey, WrapScheme } from '@digicap/keyguard'

export interface KeyWrapper {
  /** The wrapping key's public half (its `keyId` goes on chain with the capsule). */
  publicKey(): Promise<SealerPublicKey>
  /** Wraps a data key to it. */
  wrap(dataKey: Uint8Array): Promise<WrappedKey>
}

/**
 * Everything public a laptop needs to seal for a keyguard: its libp2p peer id, its wrapping
 * public key and the owner's recovery public key. No secret: print it, mail it, commit it.
 */
export interface KeyguardCard {
  /** The keyguard's libp2p peer id (string form). */
  peerId: string
  /** The wrapping key: its scheme and SubjectPublicKeyInfo PEM. */
  wrappingKey: { scheme: WrapScheme; pem: string }
  /** The owner's X25519 recovery public key, 32 bytes as 0x-hex. */
  recoveryPublicKey: `0x${string}`
}
