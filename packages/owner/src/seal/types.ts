/** Parameters, components and result of {@link sealAndPublish}. */
import type { DigicapSigner, Receiver, RuntimeKind } from '@digicap/capsule-core'
import type { PutKeyRecord, WrappedKey } from '@digicap/keyguard'
import type { CapsuleStore } from '@digicap/p2p'
import type { AnnounceOutcome, Announcer } from '../announce/types.ts'
import type { DeployedPolicyInfo, PolicyDeployer } from '../policy/types.ts'
import type { CapsuleRegistrar } from '../registry/types.ts'
import type { KeyWrapper } from '../wrapping/types.ts'

/** The pipeline's steps, in order, as progress reports name them. */
export type SealStage = 'image' | 'blobs' | 'policy' | 'seal' | 'add' | 'register' | 'announce'

/**
 * Progress of a step: bytes for `seal` (plaintext), `add` (capsule) and `image` (an image
 * capsule's layers encrypted), 0/1 then 1/1 for the others.
 */
export type SealProgressFn = (stage: SealStage, done: number, total: number) => void

/** Where the wrapped data keys go before the capsule is registered (a keyguard `KeyStore`). */
export interface KeyRecordSink {
  put(record: PutKeyRecord): Promise<unknown>
  /**
   * Removes the record `put` stored, when the capsule's registration failed (e.g. another
   * account registered its id first: keyguard ADR 0071). A keyguard's `KeyStore` has it.
   */
  delete?(capsuleId: string): Promise<unknown>
}

export interface SealAndPublishParameters {
  /**
   * The plaintext file (for a code capsule: its bundle, see {@link writeCodeBundle}); `''`
   * with `data`.
   */
  input: string
  /**
   * The plaintext itself, sealed in memory (with `input: ''`): no plaintext file is written,
   * so a killed seal leaves none behind. The policy address is awaited before the header is
   * made (no overlap of the deployment with the seal). The caller zeroes it.
   */
  data?: Uint8Array
  /** Where the capsule file is written; a temp file renamed into place. */
  output: string
  /**
   * A policy expression to compile and deploy (needs `components.policies`), or the address
   * of a policy contract already deployed.
   */
  policy: string | { address: `0x${string}` }
  chainId: number
  /** The `CapsuleRegistry` address the header names. */
  registry: string
  /** The keyguard's libp2p peer id (the header and the chain name it). */
  keyguardPeerId: string
  /**
   * The owner's X25519 recovery public key: a second copy of the data key is wrapped to it,
   * so the paper words recover the capsule when the keyguard dies.
   */
  recoveryPublicKey: Uint8Array
  /** Default `{ kind: 'data' }`. */
  runtime?: { kind: RuntimeKind; entry?: string; memoryLimit?: number; timeLimit?: number }
  receivers?: Receiver[]
  /** 32 random bytes by default. */
  capsuleId?: Uint8Array
  /**
   * The capsule format version (capsule-core SPEC §11). Default 2: a file's seal hashes every
   * byte once, its IPFS add takes the bodies' digests from the seal (ADR 0108). 1 for readers
   * that predate version 2.
   */
  formatVersion?: 1 | 2
  /**
   * The data key and its wrapped copies (to the keyguard, then the recovery key) when the
   * caller made them: an image capsule's layers are sealed to the key first (`sealImageCapsule`).
   * Default: a fresh key, wrapped here. The caller zeroes its copy.
   */
  keys?: { dataKey: Uint8Array; wrappedKeys: WrappedKey[] }
  onProgress?: SealProgressFn
}

export interface SealAndPublishComponents {
  /** Signs the header for the owner (its address is the header's `owner`). */
  signer: DigicapSigner
  /** Wraps the data key to the keyguard: a `Sealer`, or {@link publicKeyWrapper}. */
  wrapper: KeyWrapper
  /** Compiles and deploys policy expressions. */
  policies?: PolicyDeployer
  /** Registers the capsule on chain from the owner's account. */
  registrar: CapsuleRegistrar
  /** Adds the capsule file to IPFS. */
  store: Pick<CapsuleStore, 'put'>
  /** Announces the capsule. Default: not announced. */
  announcer?: Announcer
  /** Receives the wrapped keys before registration (the keyguard's key store, on the Pi). */
  keyRecords?: KeyRecordSink
}

export interface SealAndPublishResult {
  /** 0x-prefixed lowercase hex. */
  capsuleId: `0x${string}`
  cid: string
  policy: `0x${string}`
  /** The policy contract deployed for the expression; absent for a given address. */
  deployedPolicy?: DeployedPolicyInfo
  registerTransaction: string
  plaintextSize: number
  capsuleSize: number
  /** The data key, wrapped to the keyguard and to the recovery key (also in the header). */
  wrappedKeys: WrappedKey[]
  /** The metadata stored with the key record. */
  metadata: Record<string, string>
  announced: AnnounceOutcome
}
