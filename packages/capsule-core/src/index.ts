/**
 * @packageDocumentation
 *
 * `@digicap/capsule-core` — the Digicap capsule format and the crypto every other package
 * shares. No network, no chain, no TPM.
 *
 * Guarantees:
 * - HPKE helpers implement RFC 9180 base mode with X25519 / HKDF-SHA256 / AES-256-GCM.
 * - Every error crossing this package's boundary is a {@link DigicapError} with a stable `code`,
 *   and no message carries key material.
 *
 * @example
 * ```ts
 * import { generateX25519KeyPair, hpkeSeal, hpkeOpen } from '@digicap/capsule-core'
 *
 * const receiver = generateX25519KeyPair()
 * const sealed = await hpkeSeal(receiver.publicKey, new TextEncoder().encode('hi'))
 * const plain = await hpkeOpen(receiver.privateKey, sealed)
 * ```
 */

export type { DigicapErrorCode, DigicapErrorOptions } from './errors.ts'
export {
  CapsuleFormatError,
  CapsuleIntegrityError,
  CapsuleKeyError,
  CapsuleLimitError,
  CapsuleSignatureError,
  CapsuleTruncatedError,
  CapsuleVersionError,
  DigicapError,
  HpkeError,
  InvalidArgumentError,
} from './errors.ts'
export type { HpkeSealed, X25519KeyPair } from './hpke.ts'
export {
  decodeHpkeSealed,
  encodeHpkeSealed,
  generateX25519KeyPair,
  HPKE_OVERHEAD,
  hpkeOpen,
  hpkeSeal,
  X25519_KEY_LENGTH,
  x25519PublicKey,
} from './hpke.ts'
