/** The `jwe` recipient: ocicrypt's `keywrap/jwe`, for the owner's own tools and interop. */
import type { KeyObject } from 'node:crypto'
import { decryptJwe, encryptJwe } from '../jwe/jwe.ts'
import { jwePrivateKey, jwePublicKey, type KeyInput } from '../jwe/keys.ts'
import type { LayerRecipient, LayerUnwrapper } from './recipient.ts'

/**
 * One JWE (one content key, one entry per public key) per layer, as ocicrypt writes for
 * `--encryption-key jwe:a.pem --encryption-key jwe:b.pem`.
 * @throws {OciFormatError} / {@link OciUnsupportedError} for a key that is not RSA or EC.
 * @example
 * ```ts
 * const recipient = jweRecipient([readFileSync('pub.pem', 'utf8')])
 * ```
 */
export function jweRecipient(publicKeys: readonly KeyInput[]): LayerRecipient {
  const keys: KeyObject[] = publicKeys.map(jwePublicKey)
  return {
    protocol: 'jwe',
    wrap: async (privateOptions) => new TextEncoder().encode(encryptJwe(privateOptions, keys)),
  }
}

/** Opens `jwe` recipients with private keys (PEM/DER, RSA or EC). */
export function jweUnwrapper(privateKeys: readonly KeyInput[]): LayerUnwrapper {
  const keys: KeyObject[] = privateKeys.map(jwePrivateKey)
  return {
    protocol: 'jwe',
    unwrap: async (payload) => decryptJwe(payload, keys),
  }
}
