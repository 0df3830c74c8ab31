/**
 * The `ChainClient` interface: everything the keyguard reads from or sends to the chain.
 * The ethers implementation is `ethersChainClient` (ethers-chain-client.ts); tests may wrap it
 * for fault injection. Hex strings are lowercase `0x…` (addresses EIP-55 checksummed).
 */
import type { SignedAccessRequest } from '@digicap/contracts'

/** `AccessController.getGrant(grantId)`: the authoritative stored grant. */
export interface ChainGrant {
  grantId: string
  capsuleId: string
  executor: string
  ephemeralKey: string
  /** Unix seconds. */
  expiresAt: bigint
  runIndex: bigint
  fastPath: boolean
}

/**
 * What the CapsuleRegistry holds about a capsule (`ownerOf` and `accessInfo`, read at one block):
 * who registered it, its current policy, whether it is revoked. An unknown capsule has the zero
 * address as owner and policy.
 */
export interface CapsuleRecord {
  /** Checksummed; the zero address when the capsule is not registered. */
  owner: string
  /** Checksummed; the zero address when the capsule is not registered. */
  policy: string
  revoked: boolean
}

/** One `AccessGranted` log, with where it was found. */
export interface GrantLog {
  /** The contract that emitted it. */
  address: string
  grantId: string
  capsuleId: string
  executor: string
  ephemeralKey: string
  measurement: string
  expiresAt: bigint
  fastPath: boolean
  blockNumber: number
  blockHash: string
  transactionHash: string
  logIndex: number
}

/**
 * One NodeRegistry `NodeRegistered` or `NodeUpdated` log: the node's libp2p peer id and roles
 * from that block on.
 */
export interface NodeRegistrationLog {
  /** The node (checksummed). */
  node: string
  /** Its libp2p peer id (multihash bytes). */
  peerId: Uint8Array
  /** Role bits (`ROLE_EXECUTOR` = 1). */
  roles: number
  blockNumber: number
  logIndex: number
}

/** What an audit left unpaid from the deposit (`AuditShortfall`, contracts ADR 0006). */
export interface AuditShortfall {
  /** Wei taken from the executor's stake (bonded, then unbonding) because its deposit was short. */
  fromStake: bigint
  /** Wei of the fee nobody paid (deposit and stake both short). */
  uncovered: bigint
}

/** A block's number and hash (the grant watcher's cursor). */
export interface BlockRef {
  number: number
  hash: string
}

/** The fast-path request as `recordFastPathGrant` and `checkAccess` take it (hex and bigints). */
export type FastPathRecord = SignedAccessRequest

export interface CheckAccessArgs {
  capsuleId: string
  executor: string
  ephemeralKey: string
  measurement: string
  feePaid: bigint
  fastPath: boolean
  jobParams: string
}

/** Everything the keyguard needs of the chain. */
export interface ChainClient {
  /** The configured chain id (what `eth_chainId` must return). */
  readonly chainId: bigint
  /** The AccessController the keyguard trusts (checksummed). */
  readonly accessController: string
  /** What the RPC(s) say the chain id is (`eth_chainId`). */
  remoteChainId(): Promise<bigint>
  /** The newest block number. */
  blockNumber(): Promise<number>
  /** The newest block's timestamp, Unix seconds (the chain's clock). */
  now(): Promise<bigint>
  /**
   * The number of the chain's `safe` or `finalized` block (ADR 0082). With a quorum, the newest
   * one at least `quorum` RPCs report.
   * @throws {QuorumError} when too few RPCs answer (an RPC that does not know the tag fails).
   */
  taggedBlock?(tag: 'safe' | 'finalized'): Promise<number>
  /**
   * A block's timestamp, Unix seconds (for the finality lag, docs/adr/0082 amendment 2). With a
   * quorum, the newest one at least `quorum` RPCs report.
   */
  blockTime?(number: number): Promise<bigint>
  /** `AccessController.grantWindow()`: seconds a chain grant is served after its block. */
  grantWindow?(): Promise<bigint>
  /** A block's hash, or `undefined` if the chain is shorter. */
  block(number: number): Promise<BlockRef | undefined>
  /**
   * `AccessGranted` logs of the AccessController in `[fromBlock, toBlock]` for `capsuleIds`.
   * With a quorum, only logs that enough RPCs returned identically. A block the RPC has not
   * indexed must fail the read, not answer none (the ethers client reads the range's last
   * blocks by block hash: ADR 0085).
   */
  grantLogs(fromBlock: number, toBlock: number, capsuleIds: readonly string[]): Promise<GrantLog[]>
  /** The stored grant, or `undefined` if the contract does not know it. */
  getGrant(grantId: string): Promise<ChainGrant | undefined>
  /**
   * The capsule's CapsuleRegistry record (owner, policy, revoked), read at the block every other
   * read is pinned to. The keyguard releases a key only when it matches the key record (ADR 0071).
   */
  capsuleRecord(capsuleId: string): Promise<CapsuleRecord>
  /** `AccessController.checkAccess` by `eth_call`. */
  checkAccess(args: CheckAccessArgs): Promise<{ allowed: boolean; reason: number }>
  /** `NodeRegistry.isActive(node, role)`. */
  isActive(node: string, role: number): Promise<boolean>
  /** The node's registered libp2p peer id bytes (multihash), or `undefined` if not registered. */
  nodePeerId(node: string): Promise<Uint8Array | undefined>
  /**
   * `NodeRegistered` and `NodeUpdated` logs of the NodeRegistry in `[fromBlock, toBlock]`, in
   * chain order. With a quorum, only logs that enough RPCs returned identically.
   */
  nodeRegistrations(fromBlock: number, toBlock: number): Promise<NodeRegistrationLog[]>
  /**
   * Whether the capsule's current policy requires TPM attestation: its `attestationRequired()`
   * (generated for rules with `attested()`), read at one block with the policy address from the
   * AccessController's CapsuleRegistry. A policy without that function (it reverts) or an
   * unknown capsule: `false`. A return that is not an ABI `bool` counts as `true` (fail closed).
   */
  attestationRequired(capsuleId: string): Promise<boolean>
  /**
   * `NodeRegistry.getNode(node).attestationKeyHash` (lowercase hex): the SHA-256 of the node's
   * attestation record; the zero hash when it has none or is not registered.
   */
  attestationKeyHash(node: string): Promise<string>
  /**
   * AttestationHub `jobs(jobId)` at block `blockNumber`: the block's hash is agreed by a quorum
   * of RPCs first, then every RPC reads at that hash. Present only when the client knows the
   * hub's address (ADR 0033).
   * @throws {QuorumError} when the RPCs disagree on the block or the job, or the block is unknown.
   */
  hubJob?(jobId: string, blockNumber: number): Promise<HubJob>
  /** `AccessController.nonceUsed(executor, capsuleId, nonce)` (nonces are scoped per capsule). */
  nonceUsed(executor: string, capsuleId: string, nonce: bigint): Promise<boolean>
  /** The capsule's run count (the next grant's `runIndex`). */
  runCount(capsuleId: string): Promise<bigint>
  /**
   * `AccessController.overrunRunCount(capsuleId)`: 1 + the run index of the capsule's latest
   * fast-path grant recorded as an overrun (`FastPathOverrun`), 0 if none (docs/adr/0073).
   */
  overrunRunCount(capsuleId: string): Promise<bigint>
  /**
   * `AccessController.auditWindow()`: seconds within which a fast-path audit must land, so that
   * nothing the executor does after the release can make it revert (contracts ADR 0006).
   */
  auditWindow(): Promise<bigint>
  /**
   * Sends `recordFastPathGrant` and waits for the receipt. `shortfall` is set when the
   * receipt carries `AuditShortfall`: the executor's deposit did not cover the fee.
   * @throws {ContractRevertError} (from `@digicap/contracts`) if it reverts.
   */
  recordFastPathGrant(
    req: FastPathRecord,
    jobParams: string,
    signature: string,
  ): Promise<{
    grantId: string
    transactionHash: string
    blockNumber: number
    shortfall?: AuditShortfall
  }>
  /**
   * Sends `recordFastPathGrants` (several audits in one transaction) and waits for the receipt.
   * Each item is recorded or skipped alone (`outcomes`, in the items' order); the transaction
   * only reverts as a whole (e.g. out of gas), then nothing is recorded. Optional: without it
   * the fast path sends its audits one by one.
   * @throws {ContractRevertError} (from `@digicap/contracts`) if the batch reverts.
   */
  /**
   * Forgets the operator account's counted nonces, so the next audit reads the pending count
   * again: a reorg that dropped an audit transaction leaves a gap every later nonce waits behind
   * (ADR 0081). Optional: a client without it sends no audits, or counts nonces itself.
   */
  resyncNonce?(): void
  recordFastPathGrants?(items: readonly FastPathAuditItem[]): Promise<{
    transactionHash: string
    blockNumber: number
    outcomes: FastPathAuditOutcome[]
  }>
}

/** One audit of a `recordFastPathGrants` batch. */
export interface FastPathAuditItem {
  req: FastPathRecord
  jobParams: string
  signature: string
}

/**
 * What became of one item of a batch: recorded (its grant id, and `shortfall` as for
 * `recordFastPathGrant`), or skipped with the error a lone `recordFastPathGrant` would have
 * reverted with (`errorName` when the contract's ABI knows it).
 */
export type FastPathAuditOutcome =
  | { recorded: true; grantId: string; shortfall?: AuditShortfall }
  | { recorded: false; errorName?: string; reason: string }

/** An AttestationHub job as the chain path's `attested()` gate reads it (ADR 0033). */
export interface HubJob {
  status: 'none' | 'open' | 'seated' | 'certified' | 'settled' | 'timed-out'
  /** The committee's verdict on the executor before the run (`submitBeforeCertificate`). */
  before: 'none' | 'pass' | 'fail'
}

/** `NodeRegistry` role bit of executors. */
export const ROLE_EXECUTOR = 1
