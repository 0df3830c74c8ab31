/**
 * Wrapping a data key to the sealer AND to the recovery key, and re-wrapping every stored
 * key to a new sealer from the paper mnemonic.
 */
import {
  decodeHpkeSealed,
  encodeHpkeSealed,
  hpkeOpen,
  hpkeSeal,
  InvalidArgumentError,
  X25519_KEY_LENGTH,
} from '@digicap/capsule-core'
import { UnwrapError } from '../errors.ts'
import { recoveryKeyId } from '../recovery/recovery.ts'
import type { WrappedKey } from '../types.ts'
import { checkDataKey } from './rsa-oaep.ts'
import type { Sealer } from './sealer.ts'

/** HPKE AAD of recovery wraps: binds them to their purpose and format version. */
export const RECOVERY_WRAP_AAD = new TextEncoder().encode('digicap/recovery-wrap/v1')

/**
 * Wraps a data key to the X25519 recovery public key (HPKE base mode, `enc || ciphertext`).
 * @throws {InvalidArgumentError} for a key of the wrong length.
 */
export async function wrapToRecoveryKey(
  dataKey: Uint8Array,
  recoveryPublicKey: Uint8Array,
): Promise<WrappedKey> {
  checkDataKey(dataKey)
  if (
    !(recoveryPublicKey instanceof Uint8Array) ||
    recoveryPublicKey.length !== X25519_KEY_LENGTH
  ) {
    throw new InvalidArgumentError('recoveryPublicKey must be 32 bytes')
  }
  const sealed = await hpkeSeal(recoveryPublicKey, dataKey, RECOVERY_WRAP_AAD)
  return {
    scheme: 'hpke-x25519-recovery',
    keyId: recoveryKeyId(recoveryPublicKey),
    ciphertext: encodeHpkeSealed(sealed),
  }
}

/**
 * Opens a recovery wrap with the recovery private key.
 * @throws {UnwrapError} if it is not a recovery wrap or does not open.
 */
export async function unwrapWithRecoveryKey(
  wrapped: WrappedKey,
  recoveryPrivateKey: Uint8Array,
): Promise<Uint8Array> {
  if (wrapped?.scheme !== 'hpke-x25519-recovery') {
    throw new UnwrapError('Not a recovery wrap', { details: { scheme: wrapped?.scheme } })
  }
  try {
    return await hpkeOpen(
      recoveryPrivateKey,
      decodeHpkeSealed(wrapped.ciphertext),
      RECOVERY_WRAP_AAD,
    )
  } catch (cause) {
    throw new UnwrapError('The recovery wrap does not open with this recovery key', {
      cause,
      details: { keyId: wrapped.keyId },
    })
  }
}

export interface WrapDataKeyOptions {
  sealer: Sealer
  /** The owner's X25519 recovery public key (from {@link deriveOwnerIdentity} at init). */
  recoveryPublicKey: Uint8Array
}

/**
 * Wraps a capsule's data key twice: to the sealer, and to the recovery key.
 * Store both; the second is what makes a dead TPM survivable.
 *
 * @throws {InvalidArgumentError} for a data key that is empty or over 190 bytes.
 * @example
 * ```ts
 * const wrappedKeys = await wrapDataKey(dataKey, { sealer, recoveryPublicKey })
 * await store.put({ capsuleId, wrappedKeys })
 * dataKey.fill(0)
 * ```
 */
export async function wrapDataKey(
  dataKey: Uint8Array,
  options: WrapDataKeyOptions,
): Promise<WrappedKey[]> {
  checkDataKey(dataKey)
  const recovery = await wrapToRecoveryKey(dataKey, options.recoveryPublicKey)
  return [await options.sealer.wrap(dataKey), recovery]
}

/**
 * Unwraps a data key with a sealer, picking the copy wrapped to that sealer's key.
 * @throws {UnwrapError} if no copy is wrapped to this sealer, or it does not unwrap.
 */
export async function unwrapDataKey(
  wrappedKeys: readonly WrappedKey[],
  sealer: Sealer,
): Promise<Uint8Array> {
  const { keyId, scheme } = await sealer.publicKey()
  const mine = wrappedKeys.find((w) => w.keyId === keyId && w.scheme === scheme)
  if (!mine) {
    throw new UnwrapError('No copy of the data key is wrapped to this sealer', {
      details: { keyId, copies: wrappedKeys.length },
      hint: 'If the TPM was replaced, run recovery with the paper mnemonic.',
    })
  }
  return sealer.unwrap(mine)
}
