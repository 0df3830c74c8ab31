/**
 * Wrapped data keys: the data key encrypted to a key that only its holder can use.
 *
 * The keyguard produces these: one wrapped by the TPM-resident RSA key
 * (`tpm2-rsa-oaep-sha256`) and one sealed with HPKE to the owner's recovery key
 * (`hpke-x25519-recovery`, the output of `encodeHpkeSealed`). Both are useless without
 * their private keys, so a capsule header may carry them.
 */
import { checkBytes } from './encoding/bytes.ts'
import { InvalidArgumentError } from './errors.ts'

/**
 * How a data key is wrapped. The schemes SPEC §4.4 defines are listed; others must match
 * `^[a-z0-9][a-z0-9.-]{0,63}$` so new sealers can be added without a format change.
 */
export type WrapScheme =
  | 'tpm2-rsa-oaep-sha256'
  | 'software-rsa-oaep-sha256'
  | 'hpke-x25519-recovery'
  | (string & {})

/** A data key wrapped for one unwrapping key. */
export interface WrappedKey {
  /** How `ciphertext` was produced (see {@link WrapScheme}). */
  scheme: WrapScheme
  /** Which unwrapping key (e.g. a TPM persistent handle name or a recovery key id). */
  keyId: string
  /** The wrapped key bytes (RSA-OAEP block, or HPKE `enc || ciphertext`). */
  ciphertext: Uint8Array
}

/** Largest `WrappedKey.ciphertext` a header may carry (an RSA-4096 block is 512 bytes). */
export const MAX_WRAPPED_KEY_LENGTH = 1024
/** Largest `keyId` / `scheme` string, in UTF-8 bytes. */
export const MAX_KEY_ID_LENGTH = 128

const SCHEME_RE = /^[a-z0-9][a-z0-9.-]{0,63}$/

/** Checks a scheme name's syntax. */
export function isWrapScheme(value: unknown): value is WrapScheme {
  return typeof value === 'string' && SCHEME_RE.test(value)
}

/**
 * Checks a {@link WrappedKey}'s shape and limits.
 *
 * @throws {InvalidArgumentError} for a bad scheme, key id or ciphertext.
 * @example
 * ```ts
 * checkWrappedKey({ scheme: 'tpm2-rsa-oaep-sha256', keyId: '0x81000010', ciphertext })
 * ```
 */
export function checkWrappedKey(key: WrappedKey, name = 'wrappedKey'): void {
  if (typeof key !== 'object' || key === null) {
    throw new InvalidArgumentError(`${name} must be an object`)
  }
  if (!isWrapScheme(key.scheme)) {
    throw new InvalidArgumentError(`${name}.scheme is not a valid scheme name`)
  }
  if (
    typeof key.keyId !== 'string' ||
    key.keyId.length === 0 ||
    Buffer.byteLength(key.keyId) > MAX_KEY_ID_LENGTH
  ) {
    throw new InvalidArgumentError(`${name}.keyId must be 1..${MAX_KEY_ID_LENGTH} bytes`)
  }
  checkBytes(`${name}.ciphertext`, key.ciphertext)
  if (key.ciphertext.length === 0 || key.ciphertext.length > MAX_WRAPPED_KEY_LENGTH) {
    throw new InvalidArgumentError(
      `${name}.ciphertext must be 1..${MAX_WRAPPED_KEY_LENGTH} bytes`,
      {
        details: { length: key.ciphertext.length },
      },
    )
  }
}
