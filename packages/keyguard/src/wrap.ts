/**
 * Wrapping a data key to the sealer AND to the recovery key, and re-wrapping every stored
 * key to a new sealer from the paper mnemonic.
 */
import {
  DigicapError,
  decodeHpkeSealed,
  encodeHpkeSealed,
  hpkeOpen,
  hpkeSeal,
  InvalidArgumentError,
  X25519_KEY_LENGTH,
} from '@digicap/capsule-core'
import { RecoveryKeyMismatchError, UnwrapError } from './errors.ts'
import type { KeyStore } from './key-store.ts'
import { deriveOwnerIdentity, recoveryKeyId, wipeOwnerIdentity } from './recovery.ts'
import { checkDataKey } from './rsa-oaep.ts'
import type { Sealer } from './sealer.ts'
import type { WrappedKey } from './types.ts'

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

export interface RecoverKeysOptions {
  mnemonic: string
  passphrase?: string
  store: KeyStore
  /** The sealer of the new TPM (or software key) every key is re-wrapped to. */
  newSealer: Sealer
  /** Called after each capsule. */
  onProgress?: (done: number, total: number, capsuleId: string) => void
}

export interface RecoverKeysResult {
  /** Capsules whose keys are now wrapped to the new sealer. */
  recovered: string[]
  /** Capsules that could not be recovered, with the error code. */
  failed: { capsuleId: string; code: string }[]
}

/**
 * Re-wraps every key in the store to `newSealer`, using the recovery wraps opened with the
 * key derived from the paper mnemonic. Copies wrapped to other sealers (the dead TPM) are
 * dropped; the recovery copy is kept. Each record is replaced atomically, so an interrupted
 * recovery can simply be run again.
 *
 * @throws {InvalidMnemonicError} for words that are not a valid mnemonic.
 * @throws {RecoveryKeyMismatchError} if the store has records but none is wrapped to the
 *   recovery key of this mnemonic (wrong words or wrong passphrase); nothing is changed.
 * @example
 * ```ts
 * const { recovered, failed } = await recoverKeys({ mnemonic: words, store, newSealer: tpm2Sealer({ tcti, createIfMissing: true }) })
 * ```
 */
export async function recoverKeys(options: RecoverKeysOptions): Promise<RecoverKeysResult> {
  const identity = await deriveOwnerIdentity(options.mnemonic, options.passphrase ?? '')
  try {
    const ids = await options.store.list()
    const records = []
    for (const id of ids) {
      try {
        records.push({ id, record: await options.store.get(id) })
      } catch (err) {
        records.push({ id, error: err })
      }
    }
    const matching = records.some((r) =>
      r.record?.wrappedKeys.some(
        (w) => w.scheme === 'hpke-x25519-recovery' && w.keyId === identity.recoveryKeyId,
      ),
    )
    if (ids.length > 0 && !matching) {
      throw new RecoveryKeyMismatchError(
        "No stored key is wrapped to this mnemonic's recovery key",
        {
          details: { records: ids.length, recoveryKeyId: identity.recoveryKeyId },
          hint: 'Check the words and the passphrase.',
        },
      )
    }
    // Fail before touching any record if the new sealer is not usable.
    await options.newSealer.publicKey()
    const result: RecoverKeysResult = { recovered: [], failed: [] }
    let done = 0
    for (const { id, record, error } of records) {
      try {
        if (error !== undefined) throw error
        if (!record) continue
        const copy = record.wrappedKeys.find(
          (w) => w.scheme === 'hpke-x25519-recovery' && w.keyId === identity.recoveryKeyId,
        )
        if (!copy) {
          throw new RecoveryKeyMismatchError('Record has no copy for this recovery key', {
            details: { capsuleId: id },
          })
        }
        const dataKey = await unwrapWithRecoveryKey(copy, identity.recoveryKeyPair.privateKey)
        try {
          const rewrapped = await options.newSealer.wrap(dataKey)
          await options.store.put(
            {
              capsuleId: id,
              wrappedKeys: [rewrapped, copy],
              metadata: record.metadata,
            },
            { replace: true },
          )
        } finally {
          dataKey.fill(0)
        }
        result.recovered.push(id)
      } catch (err) {
        result.failed.push({
          capsuleId: id,
          code: err instanceof DigicapError ? String(err.code) : 'UNKNOWN',
        })
      }
      options.onProgress?.(++done, records.length, id)
    }
    return result
  } finally {
    wipeOwnerIdentity(identity)
  }
}
