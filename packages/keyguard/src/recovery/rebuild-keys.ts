/**
 * Recovery of a dead Pi: rebuilds the key store from what outlives it — the owner's capsules
 * registered on chain, and each capsule's header on IPFS, which carries the data key wrapped
 * to the recovery key derived from the paper words. Every key is re-wrapped to the new sealer,
 * and the chain's record of the keyguard is pointed at the new key.
 *
 * The chain, the capsule fetch and the chain update are components ({@link CapsuleDirectory},
 * {@link HeaderFetcher}, {@link KeyguardRecorder}); this module holds no network code.
 */
import {
  type Address,
  CapsuleSignatureError,
  checkKeyCommitment,
  DigicapError,
  type ParsedCapsuleHeader,
  verifyCapsuleHeader,
} from '@digicap/capsule-core'
import { RecoveryKeyMismatchError, UnwrapError } from '../errors.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapWithRecoveryKey } from '../sealers/wrap.ts'
import type { KeyStore } from '../store/key-store.ts'
import type { WrappedKey } from '../types.ts'
import { deriveOwnerIdentity, wipeOwnerIdentity } from './recovery.ts'

/** One capsule the chain says the owner registered, as it stands now. */
export interface OwnedCapsule {
  /** 0x-prefixed lowercase hex. */
  capsuleId: string
  cid: string
  policy: string
  revoked: boolean
  /** The keyguard key id the chain records, lowercase hex without 0x. */
  keyguardKeyId: string
  /** The keyguard peer id the chain records (string form). */
  keyguardPeerId: string
}

/** Lists the owner's registered capsules (e.g. `CapsuleRegistered` logs indexed by owner). */
export interface CapsuleDirectory {
  ownedCapsules(owner: Address): Promise<OwnedCapsule[]>
}

/** Fetches and parses a capsule's header by CID (from IPFS peers). */
export interface HeaderFetcher {
  /** @throws on any failure; `signal` aborts after the per-capsule timeout. */
  fetchHeader(cid: string, options: { signal: AbortSignal }): Promise<ParsedCapsuleHeader>
}

/** Sends `updateKeyguard` from the owner account and waits for it. */
export interface KeyguardRecorder {
  updateKeyguard(capsuleId: string, peerId: string, keyId: string): Promise<void>
}

/** Why a capsule could not be recovered. */
export type RebuildFailureReason =
  /** The capsule's blocks were not found (no peer served them within the timeout). */
  | 'blocks-not-found'
  /** The fetched bytes are not this owner's capsule (bad header, signature, owner or id). */
  | 'header-invalid'
  /** The header has no copy of the data key for this mnemonic's recovery key. */
  | 'no-recovery-copy'
  /** The recovery copy did not open, or the key fails the header's commitment. */
  | 'key-mismatch'
  /** The key is stored, but the chain's keyguard record could not be updated. */
  | 'chain-update-failed'
  /** The key store or the sealer failed. */
  | 'store-failed'

export interface RebuildFailure {
  capsuleId: string
  cid: string
  reason: RebuildFailureReason
  /** The underlying error's code (`UNKNOWN` if it had none). */
  code: string
  message: string
}

export interface RebuildKeyStoreOptions {
  mnemonic: string
  passphrase?: string
  store: KeyStore
  /** The new sealer every key is wrapped to. */
  sealer: Sealer
  /** This keyguard's libp2p peer id (the one the chain must record). */
  peerId: string
  directory: CapsuleDirectory
  fetcher: HeaderFetcher
  /** Without it the chain's record is left as it is (reported in `keyguardStale`). */
  recorder?: KeyguardRecorder
  /** Per-capsule fetch timeout. Default 60 000 ms. */
  fetchTimeoutMs?: number
  /** Metadata stored with each rebuilt record (besides `cid` and `policy`). */
  metadata?: Record<string, string>
  /** After each capsule: how many are done of how many, and what happened to this one. */
  onProgress?: (
    done: number,
    total: number,
    capsuleId: string,
    outcome: 'recovered' | 'present' | 'revoked' | 'failed',
  ) => void
}

export interface RebuildKeyStoreResult {
  /** Keys fetched from IPFS and stored, wrapped to the new sealer. */
  recovered: string[]
  /** Keys that were already in the store, wrapped to the new sealer (a re-run). */
  present: string[]
  /** Revoked capsules: never released again, so not recovered. */
  revoked: string[]
  /** Capsules whose chain record now names this keyguard's key (updated in this run). */
  keyguardUpdated: string[]
  /** Capsules whose chain record still names another key (no recorder given). */
  keyguardStale: string[]
  failed: RebuildFailure[]
}

class RebuildStepError extends Error {
  readonly reason: RebuildFailureReason
  constructor(reason: RebuildFailureReason, cause: unknown) {
    super(reason, { cause })
    this.reason = reason
  }
}

function describe(err: unknown): { code: string; message: string } {
  if (err instanceof DigicapError) return { code: String(err.code), message: err.shortMessage }
  return { code: 'UNKNOWN', message: (err as Error)?.message ?? String(err) }
}

async function step<T>(reason: RebuildFailureReason, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw new RebuildStepError(reason, err)
  }
}

/**
 * Rebuilds the key store of the owner of `mnemonic` from the chain and IPFS, onto `sealer`.
 * Idempotent and resumable: a capsule whose record already holds a copy for `sealer` is not
 * fetched again, and a chain record already naming `peerId` and the sealer's key is not
 * updated again, so a run cut by a crash is finished by running it again. One capsule's
 * failure does not stop the others: it is reported with a typed reason.
 *
 * @throws {InvalidMnemonicError} for words that are not a valid mnemonic.
 * @throws whatever `directory.ownedCapsules` or the sealer's `publicKey()` throws (nothing is
 *   changed then).
 * @example
 * ```ts
 * const r = await rebuildKeyStore({ mnemonic, store, sealer, peerId, directory, fetcher, recorder })
 * for (const f of r.failed) console.log(f.capsuleId, f.reason)
 * ```
 */
export async function rebuildKeyStore(
  options: RebuildKeyStoreOptions,
): Promise<RebuildKeyStoreResult> {
  const identity = await deriveOwnerIdentity(options.mnemonic, options.passphrase ?? '')
  const timeoutMs = options.fetchTimeoutMs ?? 60_000
  try {
    const sealerKey = await options.sealer.publicKey()
    const capsules = await options.directory.ownedCapsules(identity.address)
    const result: RebuildKeyStoreResult = {
      recovered: [],
      present: [],
      revoked: [],
      keyguardUpdated: [],
      keyguardStale: [],
      failed: [],
    }
    let done = 0
    for (const capsule of capsules) {
      let outcome: 'recovered' | 'present' | 'revoked' | 'failed'
      try {
        if (capsule.revoked) {
          result.revoked.push(capsule.capsuleId)
          outcome = 'revoked'
        } else {
          const existing = await step('store-failed', () => options.store.get(capsule.capsuleId))
          const has = existing?.wrappedKeys.some(
            (w) => w.keyId === sealerKey.keyId && w.scheme === sealerKey.scheme,
          )
          if (has) {
            result.present.push(capsule.capsuleId)
            outcome = 'present'
          } else {
            await recoverOne(capsule, existing?.metadata)
            result.recovered.push(capsule.capsuleId)
            outcome = 'recovered'
          }
          const current =
            capsule.keyguardKeyId.toLowerCase() === sealerKey.keyId &&
            capsule.keyguardPeerId === options.peerId
          if (!current) {
            if (options.recorder) {
              await step('chain-update-failed', () =>
                options.recorder?.updateKeyguard(
                  capsule.capsuleId,
                  options.peerId,
                  sealerKey.keyId,
                ),
              )
              result.keyguardUpdated.push(capsule.capsuleId)
            } else {
              result.keyguardStale.push(capsule.capsuleId)
            }
          }
        }
      } catch (err) {
        const reason = err instanceof RebuildStepError ? err.reason : 'store-failed'
        const cause = err instanceof RebuildStepError ? err.cause : err
        result.failed.push({
          capsuleId: capsule.capsuleId,
          cid: capsule.cid,
          reason,
          ...describe(cause),
        })
        outcome = 'failed'
      }
      options.onProgress?.(++done, capsules.length, capsule.capsuleId, outcome)
    }
    return result
  } finally {
    wipeOwnerIdentity(identity)
  }

  async function recoverOne(
    capsule: OwnedCapsule,
    previousMetadata: Record<string, string> | undefined,
  ): Promise<void> {
    const parsed = await step('blocks-not-found', () =>
      options.fetcher.fetchHeader(capsule.cid, { signal: AbortSignal.timeout(timeoutMs) }),
    )
    await step('header-invalid', () => {
      verifyCapsuleHeader(parsed, { owner: identity.address })
      const id = `0x${Buffer.from(parsed.header.capsuleId).toString('hex')}`
      if (id !== capsule.capsuleId.toLowerCase()) {
        throw new CapsuleSignatureError('The CID holds another capsule', {
          details: { expected: capsule.capsuleId, got: id },
        })
      }
    })
    const copy = parsed.header.wrappedKeys.find(
      (w) => w.scheme === 'hpke-x25519-recovery' && w.keyId === identity.recoveryKeyId,
    ) as WrappedKey | undefined
    if (!copy) {
      throw new RebuildStepError(
        'no-recovery-copy',
        new RecoveryKeyMismatchError("The header has no copy for this mnemonic's recovery key", {
          details: { capsuleId: capsule.capsuleId, recoveryKeyId: identity.recoveryKeyId },
          hint: 'Check the words and the passphrase.',
        }),
      )
    }
    const dataKey = await step('key-mismatch', async () => {
      const key = await unwrapWithRecoveryKey(copy, identity.recoveryKeyPair.privateKey)
      if (!checkKeyCommitment(parsed, key)) {
        key.fill(0)
        throw new UnwrapError("The recovered data key fails the header's key commitment", {
          details: { capsuleId: capsule.capsuleId },
        })
      }
      return key
    })
    try {
      await step('store-failed', async () => {
        const rewrapped = await options.sealer.wrap(dataKey)
        await options.store.put(
          {
            capsuleId: capsule.capsuleId.toLowerCase(),
            wrappedKeys: [rewrapped, copy],
            metadata: {
              ...previousMetadata,
              ...options.metadata,
              owner: identity.address,
              cid: capsule.cid,
              policy: capsule.policy,
              runtime: parsed.header.runtime.kind,
            },
          },
          { replace: true },
        )
      })
    } finally {
      dataKey.fill(0)
    }
  }
}
