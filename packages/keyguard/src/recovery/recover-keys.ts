/**
 * Recovery: re-wrap every stored key (and the owner file) to a new sealer from the paper
 * mnemonic, after the old TPM died.
 */
import { DigicapError } from '@digicap/capsule-core'
import { RecoveryKeyMismatchError } from '../errors.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapWithRecoveryKey } from '../sealers/wrap.ts'
import type { KeyStore } from '../store/key-store.ts'
import { readOwner, restoreOwner } from './owner.ts'
import { deriveOwnerIdentity, wipeOwnerIdentity } from './recovery.ts'

export interface RecoverKeysOptions {
  mnemonic: string
  passphrase?: string
  store: KeyStore
  /** The sealer of the new TPM (or software key) every key is re-wrapped to. */
  newSealer: Sealer
  /**
   * The owner file (see {@link initOwner}) to rewrite for the new sealer. It must belong to
   * this mnemonic's owner; a corrupt or missing one is rebuilt.
   */
  ownerPath?: string
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
 * key derived from the paper mnemonic, and rewrites the owner file if given. Copies wrapped to other sealers (the dead TPM) are
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
    if (options.ownerPath !== undefined) {
      const previous = await readOwner(options.ownerPath).catch(() => undefined)
      if (previous && previous.address !== identity.address) {
        throw new RecoveryKeyMismatchError('The owner file belongs to another mnemonic', {
          details: { ownerAddress: previous.address, derivedAddress: identity.address },
          hint: 'Check the words and the passphrase.',
        })
      }
    }
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
    if (options.ownerPath !== undefined) {
      await restoreOwner({
        path: options.ownerPath,
        sealer: options.newSealer,
        mnemonic: options.mnemonic,
        ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      })
    }
    return result
  } finally {
    wipeOwnerIdentity(identity)
  }
}
