/**
 * @packageDocumentation
 *
 * `@digicap/keyguard` — the owner's hot wallet for capsule data keys.
 *
 * Guarantees:
 * - A plain data key never touches disk or logs: wrapped keys are stored, the TPM unwraps
 *   through stdin/stdout pipes, and errors carry ids and lengths, never key bytes.
 * - The `tpm2` sealer's private key is generated inside the TPM (`sensitivedataorigin`,
 *   `fixedtpm`) and never leaves it; wrapping needs only the public key.
 * - The `software` sealer is refused unless `allowInsecure: true`, refuses a key file readable
 *   by others, and warns in the log and in `describe()`.
 * - Every data key is also wrapped to a recovery key derived from a 24-word BIP-39 mnemonic,
 *   so `recoverKeys` restores every key onto a new TPM after the old one dies.
 * - Key-store and journal files are written atomically (temp, fsync, rename/link, fsync dir):
 *   after a crash a reader sees the old or the new file, never a torn one; corrupt files
 *   fail with {@link KeyStoreCorruptError}.
 * - The owner file keeps the owner's Ethereum key and libp2p seed only wrapped to the sealer,
 *   and checks them against its public parts when unwrapping.
 * - The release journal serves a grant to one executor key only, and never again once
 *   acknowledged, across restarts.
 * - Grants are served only from the configured AccessController on the configured chain
 *   (`eth_chainId` checked at start), `confirmations` deep, re-read with `getGrant` before
 *   release; with several RPCs a log counts only when a quorum returns it, and contract reads
 *   run at one block whose hash a quorum agrees on (honest RPCs a block apart agree).
 * - A release journals the grant before unwrapping, seals the data key with HPKE to the grant's
 *   ephemeral key (AAD = grant id), zeroes it, and completes only on the executor's ack: a crash
 *   re-serves the grant to the same key after restart, a completed grant is never served again.
 * - The fast path answers only signed, fresh, unreplayed requests from the executor's registered
 *   libp2p peer that `checkAccess` allows, and journals the on-chain audit record first.
 * - A capsule whose policy requires `attested()` (read from chain) is unwrapped, on either path,
 *   only after the executor's registered TPM attestation key answered a challenge with a valid
 *   before-quote bound to the grant and its ephemeral key; otherwise nothing is unwrapped
 *   ({@link NotAttestedError}, fast-path refusal `not-attested`, chain grant journaled refused).
 * - Audit records are signed by the keyguard operator account (`operatorPrivateKey`,
 *   m/44'/60'/0'/0/1, approved by the owner with `CapsuleRegistry.setOperator`), one at a time
 *   through a `NonceManager`: they never race the owner's own transactions for a nonce.
 * - Every error crossing this boundary is a `DigicapError` with a stable `code`.
 *
 * @example
 * ```ts
 * import { createKeyStore, deriveOwnerIdentity, generateMnemonic, tpm2Sealer, unwrapDataKey, wrapDataKey } from '@digicap/keyguard'
 *
 * const words = generateMnemonic()                      // show once, for paper
 * const owner = await deriveOwnerIdentity(words)
 * const sealer = tpm2Sealer({ tcti: 'device:/dev/tpmrm0', createIfMissing: true })
 * const store = await createKeyStore('/var/lib/digicap/keys')
 * const wrappedKeys = await wrapDataKey(dataKey, { sealer, recoveryPublicKey: owner.recoveryKeyPair.publicKey })
 * await store.put({ capsuleId, wrappedKeys })
 * const again = await unwrapDataKey((await store.get(capsuleId))!.wrappedKeys, sealer)
 *
 * // the runtime: grants from the chain and the fast path, pushed over libp2p
 * const operator = new Wallet(hexlify(owner.operatorPrivateKey), provider) // owner-approved operator
 * const chain = ethersChainClient({ providers: [provider], signer: operator, addresses, chainId })
 * const journal = await createReleaseJournal('/var/lib/digicap/journal')
 * const keyguard = createKeyguard({ dataDir: '/var/lib/digicap', confirmations: 3, fastPath: { enabled: true } })(
 *   { sealer, keyStore: store, journal, chain, libp2p },
 * )
 * await keyguard.start()
 * ```
 */

/** The TPM makers' CA certificates a keyguard trusts for executors' EKs (`attestation.ekRoots`). */
export { type EkRoots, parseEkRoots, readEkRoots } from '@digicap/attestation'
// Defined in @digicap/contracts (the RPC quorum lives there); re-exported from the barrel only,
// so errors.ts (which every keyguard module imports) does not load ethers.
export { QuorumError } from '@digicap/contracts'
// The fast path's connection guard (cuts flooding strangers), built before the libp2p node.
export type { ConnectionGuard, ConnectionGuardInit, ConnectionGuardStats } from '@digicap/protocol'
export { createConnectionGuard } from '@digicap/protocol'
export type {
  AuditShortfall,
  BlockRef,
  CapsuleRecord,
  ChainClient,
  ChainGrant,
  CheckAccessArgs,
  FastPathAuditItem,
  FastPathAuditOutcome,
  FastPathRecord,
  GrantLog,
  HubJob,
  NodeRegistrationLog,
} from './chain/chain-client.ts'
export { ROLE_EXECUTOR } from './chain/chain-client.ts'
export type { Finality } from './chain/confirmed-block.ts'
export type { EthersChainClientInit } from './chain/ethers-chain-client.ts'
export { ethersChainClient } from './chain/ethers-chain-client.ts'
export { FINALITY_LAG_SHARE, type FinalityLag } from './chain/finality-lag.ts'
export {
  AlreadyReleasedError,
  AwaitingVerdictError,
  ChainMismatchError,
  FastPathConfigError,
  FinalityLagError,
  GrantKeyMismatchError,
  GrantRefusedError,
  InvalidMnemonicError,
  KeyExistsError,
  KeyguardStateError,
  KeyStoreCorruptError,
  NotAttestedError,
  PolicyFollowError,
  RecoveryKeyMismatchError,
  ReleaseFailedError,
  ReleaseNotBegunError,
  SealerRefusedError,
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmIdentityError,
  TpmPolicyError,
  TpmSessionError,
  TpmUnavailableError,
  UnwrapError,
} from './errors.ts'
export { type AuditBlame, auditBlame } from './fast-path/audit-blame.ts'
export type {
  AuditAlertReason,
  FastPathComponents,
  FastPathEvent,
  FastPathHalt,
  FastPathInit,
  FastPathServer,
} from './fast-path/fast-path-server.ts'
export { auditAlertReason, fastPathServer } from './fast-path/fast-path-server.ts'
export type {
  FinalityLagEvent,
  Keyguard,
  KeyguardComponents,
  KeyguardEvent,
  KeyguardInit,
  KeyguardStatus,
} from './keyguard.ts'
export { createKeyguard } from './keyguard.ts'
export * from './local.ts'
export type {
  AttestationChallenge,
  AttestationGate,
  AttestationGateComponents,
  AttestationGateInit,
  AttestationRequirement,
} from './release/attestation-gate.ts'
export { attestationGate, notAttestedReason } from './release/attestation-gate.ts'
export type {
  CommitteeGate,
  CommitteeGateComponents,
  CommitteeGateInit,
} from './release/committee-gate.ts'
export { committeeGate } from './release/committee-gate.ts'
export type {
  FollowCapsulePolicyOptions,
  FollowCapsulePolicyResult,
} from './release/follow-policy.ts'
export { followCapsulePolicy } from './release/follow-policy.ts'
export type {
  GrantWatcher,
  GrantWatcherComponents,
  GrantWatcherEvent,
  GrantWatcherInit,
} from './release/grant-watcher.ts'
export { grantWatcher } from './release/grant-watcher.ts'
export type {
  KeyReleaser,
  KeyReleaserComponents,
  KeyReleaserInit,
  ReleaseEvent,
} from './release/key-releaser.ts'
export { keyReleaser, peerIdFromRegistered } from './release/key-releaser.ts'
export type { BeginResult, ReleaseEntry, ReleaseJournal } from './release/release-journal.ts'
export { createReleaseJournal, MAX_EXECUTOR_KEY_BYTES } from './release/release-journal.ts'
