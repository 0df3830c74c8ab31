import { addressFromPrivateKey, type Hex, hashTypedData, signDigest } from '@digicap/capsule-core'
import type { OwnerSigner } from './types.ts'

/**
 * An {@link OwnerSigner} over a raw secp256k1 key held in memory (tests, scripts, a key
 * unwrapped from the keyguard for one operation). The key is copied; call `wipe()` when done.
 *
 * @throws {InvalidArgumentError} for a key that is not 32 bytes or not a valid secp256k1 key.
 * @example
 * ```ts
 * const signer = privateKeySigner(ownerKey)
 * try { await sealAndPublish(params, { signer, ... }) } finally { signer.wipe() }
 * ```
 */
export function privateKeySigner(privateKey: Uint8Array | Hex): OwnerSigner & { wipe(): void } {
  const address = addressFromPrivateKey(privateKey)
  const key =
    typeof privateKey === 'string'
      ? new Uint8Array(Buffer.from(privateKey.slice(2), 'hex'))
      : privateKey.slice()
  return {
    address,
    async signTypedData(data) {
      return signDigest(hashTypedData(data), key)
    },
    wipe() {
      key.fill(0)
    },
  }
}
