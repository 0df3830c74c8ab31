/**
 * The `Sealer` interface: something that holds one asymmetric key and wraps data keys to it.
 * Wrapping needs only the public key; unwrapping needs the private key (inside the TPM for
 * the `tpm2` sealer). Implementations live in `tpm2-sealer.ts` and `software-sealer.ts`.
 */
import type { WrappedKey, WrapScheme } from '../types.ts'

/** A sealer's public key, in forms other machines can use to wrap without the sealer. */
export interface SealerPublicKey {
  /** The scheme a wrap to this key produces. */
  scheme: WrapScheme
  /** Lowercase hex SHA-256 of `spkiDer`: the `keyId` of every key wrapped to it. */
  keyId: string
  /** SubjectPublicKeyInfo, PEM. */
  pem: string
  /** SubjectPublicKeyInfo, DER. */
  spkiDer: Uint8Array
}

/** What a sealer reports about itself (for `status` screens and logs). Never secret. */
export interface SealerDescription {
  kind: 'tpm2' | 'software'
  scheme: WrapScheme
  keyId: string
  /** `false` when the private key lives in a file rather than in hardware. */
  hardwareBacked: boolean
  /** A loud warning to show to the owner, if the setup is weaker than a hardware wallet. */
  warning?: string
  /** Non-secret facts: TCTI, handle, key file path. */
  details: Record<string, string>
}

export interface Sealer {
  /** The wrapping key's public half. Creates the key first if the sealer was told to. */
  publicKey(): Promise<SealerPublicKey>
  /**
   * Wraps a data key (1–190 bytes; normally 32) to this sealer's key.
   * @throws {InvalidArgumentError} for an empty or too long data key.
   */
  wrap(dataKey: Uint8Array): Promise<WrappedKey>
  /**
   * Unwraps a key this sealer wrapped. The caller owns the result and should `.fill(0)` it.
   * @throws {UnwrapError} for another scheme or key id, or a ciphertext that does not decrypt.
   */
  unwrap(wrapped: WrappedKey): Promise<Uint8Array>
  /** Describes the sealer: kind, key id, whether it is hardware backed, and any warning. */
  describe(): Promise<SealerDescription>
}
