/**
 * Signers. Every SDK call that only signs takes capsule-core's `DigicapSigner` (`address` +
 * `signTypedData`: a hardware wallet, viem's account, a TPM-held key fit as they are). The
 * calls that send transactions or run capsules also need the key in this process today (the
 * executor signs access requests and results itself): `localSigner` makes a `DigicapSigner`
 * that those calls can use, and nothing else can read its key.
 */
import { type DigicapSigner, type Hex, hexToBytes, privateKeySigner } from '@digicap/capsule-core'

export type { DigicapSigner }

const localKeys = new WeakMap<DigicapSigner, Uint8Array>()

/**
 * A `DigicapSigner` over a secp256k1 key held in this process (capsule-core's
 * `privateKeySigner`), also usable by `runCapsule`, `registerExecutor` and `sealAndPublish`.
 *
 * @throws {InvalidArgumentError} for a key that is not a valid 32-byte secp256k1 key.
 * @example
 * ```ts
 * const owner = localSigner(process.env.OWNER_KEY as `0x${string}`)
 * owner.address // '0x…' (EIP-55)
 * ```
 */
export function localSigner(privateKey: Uint8Array | Hex): DigicapSigner {
  const signer = Object.freeze(privateKeySigner(privateKey))
  // privateKeySigner checked it; keep a copy the caller cannot zero or change.
  const key = typeof privateKey === 'string' ? hexToBytes(privateKey) : Uint8Array.from(privateKey)
  localKeys.set(signer, key)
  return signer
}

/** The key behind a signer made by {@link localSigner}; undefined for any other signer. */
export function localKeyOf(signer: DigicapSigner): Uint8Array | undefined {
  return localKeys.get(signer)
}
