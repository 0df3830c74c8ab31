import { rsaPublicKey, type SealerPublicKey, wrapWithPublicKey } from '@digicap/keyguard/local'
import type { KeyWrapper } from './types.ts'

/**
 * A {@link KeyWrapper} from the keyguard's public key alone (RSA-OAEP-SHA256 in software):
 * what a laptop uses to seal for a Pi whose private key never leaves its TPM.
 *
 * @throws {InvalidArgumentError} if `key.pem` is not an RSA-2048 SubjectPublicKeyInfo.
 * @example
 * ```ts
 * const wrapper = publicKeyWrapper(card.wrappingKey)
 * ```
 */
export function publicKeyWrapper(key: Pick<SealerPublicKey, 'scheme' | 'pem'>): KeyWrapper {
  const publicKey = rsaPublicKey(key.scheme, key.pem)
  return {
    async publicKey() {
      return publicKey
    },
    async wrap(dataKey) {
      return wrapWithPublicKey(publicKey, dataKey)
    },
  }
}
