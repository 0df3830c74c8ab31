import {
  type CapsuleDirectory,
  type HeaderFetcher,
  type KeyguardRecorder,
  type KeyStore,
  type RebuildKeyStoreResult,
  rebuildKeyStore,
  type Sealer,
} from '@digicap/keyguard/local'
import type { CapsuleStore } from '@digicap/p2p'
import { pinCapsules } from '../store/pin-capsules.ts'

export interface RestoreKeyguardParameters {
  /** The paper words. */
  mnemonic: string
  passphrase?: string
  /** This keyguard's libp2p peer id (the one the chain records after recovery). */
  peerId: string
  /** Per-capsule timeout for fetching a header and for pinning. Default 60 000 ms. */
  fetchTimeoutMs?: number
  /** Metadata stored with each rebuilt record (besides `cid` and `policy`). */
  metadata?: Record<string, string>
  onProgress?: (stage: 'rebuild' | 'pin', done: number, total: number) => void
}

export interface RestoreKeyguardComponents {
  /** The new sealer (new TPM) every key is wrapped to. */
  sealer: Sealer
  keyStore: KeyStore
  /** The owner's capsules on chain ({@link ethersCapsuleDirectory}). */
  directory: CapsuleDirectory
  /** Capsule headers from IPFS ({@link ipfsHeaderFetcher}). */
  fetcher: HeaderFetcher
  /** Points the chain's keyguard record at the new key; without it the record stays stale. */
  recorder?: KeyguardRecorder
  /** Pins the recovered capsules' blocks here, so this keyguard serves them again. */
  store: Pick<CapsuleStore, 'pin' | 'has'>
}

export interface RestoreKeyguardResult {
  /** What the chain-side rebuild did (see keyguard's `rebuildKeyStore`). */
  chain: RebuildKeyStoreResult
  /** Capsules whose blocks could not be pinned (the key is recovered; serving is not). */
  notPinned: { capsuleId: string; code: string }[]
}

/**
 * Rebuilds a dead keyguard from the paper words, the chain and IPFS: every capsule the chain
 * says the owner registered is fetched by CID, its data key is taken from the header's
 * recovery copy and wrapped to the new sealer, the chain's keyguard record is pointed at the
 * new key, and the capsule's blocks are pinned again. Idempotent: run it again to finish a
 * run cut short. One capsule's failure is reported, never thrown.
 *
 * @throws {InvalidMnemonicError} | whatever `directory.ownedCapsules` or the sealer throws.
 * @example
 * ```ts
 * const { chain } = await restoreKeyguard({ mnemonic, peerId },
 *   { sealer, keyStore, directory, fetcher: ipfsHeaderFetcher(store), recorder, store })
 * ```
 */
export async function restoreKeyguard(
  params: RestoreKeyguardParameters,
  components: RestoreKeyguardComponents,
): Promise<RestoreKeyguardResult> {
  const progress = params.onProgress ?? (() => {})
  const fetchTimeoutMs = params.fetchTimeoutMs ?? 60_000
  const chain = await rebuildKeyStore({
    mnemonic: params.mnemonic,
    ...(params.passphrase !== undefined ? { passphrase: params.passphrase } : {}),
    store: components.keyStore,
    sealer: components.sealer,
    peerId: params.peerId,
    directory: components.directory,
    fetcher: components.fetcher,
    ...(components.recorder ? { recorder: components.recorder } : {}),
    fetchTimeoutMs,
    ...(params.metadata ? { metadata: params.metadata } : {}),
    onProgress: (done, total) => progress('rebuild', done, total),
  })
  const { failed: notPinned } = await pinCapsules(components.keyStore, components.store, {
    capsuleIds: [...chain.recovered, ...chain.present],
    timeoutMs: fetchTimeoutMs,
    onProgress: (done, total) => progress('pin', done, total),
  })
  return { chain, notPinned }
}
