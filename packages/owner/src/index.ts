/**
 * @packageDocumentation
 *
 * `@digicap/owner` — the capsule owner's pipeline as a library: seal a file under a policy
 * and publish it in one call, take capsules sealed elsewhere into a keyguard, and rebuild a
 * dead keyguard from the paper words. Every side effect is a component passed in (signer,
 * key wrapper, policy deployer, chain registrar, IPFS store, announcer, key store), with
 * adapters for the Digicap stack (ethers, solc, helia, gossipsub).
 *
 * Guarantees:
 * - Sealing needs no keyguard secret: {@link publicKeyWrapper} wraps with the keyguard's
 *   public key alone, so a laptop seals for a Pi whose private key stays in its TPM.
 * - The plain data key exists only in memory during {@link sealAndPublish} and is zeroed
 *   before it returns; it is stored only wrapped (to the keyguard and to the recovery key).
 * - A capsule is registered on chain only after its blocks are added and its wrapped keys
 *   are handed to the key record sink; the announcement comes last and never fails a seal.
 * - No private key or ethers type crosses the pipeline's API: the owner signs through
 *   capsule-core's `DigicapSigner` (bring a hardware wallet, viem's account, a TPM-held key;
 *   `ethersSigner` of `@digicap/contracts` adapts an ethers signer).
 * - {@link adoptCapsules} takes a key only from a header signed by the owner, naming this
 *   keyguard and the chain's policy, whose copy opens to the key the header commits to.
 *
 * @example
 * ```ts
 * import { publicKeyWrapper, sealAndPublish } from '@digicap/owner'
 *
 * const r = await sealAndPublish(
 *   { input: 'photo.jpg', output: 'photo.capsule', policy: 'maxRuns(3)', chainId, registry,
 *     keyguardPeerId: card.peerId, recoveryPublicKey },
 *   { signer, wrapper: publicKeyWrapper(card.wrappingKey), policies, registrar, store, announcer },
 * )
 * console.log(r.capsuleId, r.cid)
 * ```
 */

export type {
  AdoptCapsulesComponents,
  AdoptCapsulesParameters,
  AdoptCapsulesResult,
} from './adopt/adopt-capsules.ts'
export { adoptCapsules } from './adopt/adopt-capsules.ts'
export type { AdoptionQueue } from './adopt/adoption-queue.ts'
export { adoptionQueue } from './adopt/adoption-queue.ts'
export type { GossipAnnouncerInit } from './announce/gossip-announcer.ts'
export { gossipAnnouncer } from './announce/gossip-announcer.ts'
export type { AnnounceOutcome, Announcer } from './announce/types.ts'
export type { BundleBytesEncoder } from './bundle/code-bundle.ts'
export { readCodeFiles, writeCodeBundle } from './bundle/code-bundle.ts'
export {
  CapsuleAdoptionError,
  DaemonRunningError,
  InputFileError,
  PolicyCodeError,
  RuntimeUnsupportedError,
} from './errors.ts'
export type {
  SealImageComponents,
  SealImageParameters,
  SealImageResult,
} from './image/seal-image.ts'
export { sealImageCapsule } from './image/seal-image.ts'
export type { OperatorStatus } from './operator/keyguard-operator.ts'
export {
  ensureKeyguardOperator,
  operatorWarning,
  readKeyguardOperator,
} from './operator/keyguard-operator.ts'
export { childProcessPolicyCompiler } from './policy/child-compiler.ts'
export { cachedPolicyCompiler } from './policy/policy-cache.ts'
export type { SolcPolicyDeployerInit } from './policy/solc-policy-deployer.ts'
export { solcPolicyDeployer } from './policy/solc-policy-deployer.ts'
export {
  type TransactorPolicyDeployerInit,
  transactorPolicyDeployer,
} from './policy/transactor-policy-deployer.ts'
export type {
  DeployedPolicyInfo,
  PolicyCompiler,
  PolicyDeployer,
  TransactionSerializer,
} from './policy/types.ts'
export { ethersCapsuleDirectory } from './recovery/ethers-capsule-directory.ts'
export { ethersKeyguardRecorder } from './recovery/ethers-keyguard-recorder.ts'
export { ipfsHeaderFetcher } from './recovery/ipfs-header-fetcher.ts'
export type {
  RestoreKeyguardComponents,
  RestoreKeyguardParameters,
  RestoreKeyguardResult,
} from './recovery/restore-keyguard.ts'
export { restoreKeyguard } from './recovery/restore-keyguard.ts'
export { ethersCapsuleRegistrar } from './registry/ethers-registrar.ts'
export type {
  MoveCapsulePolicyComponents,
  MoveCapsulePolicyParams,
  MoveCapsulePolicyResult,
  PolicyUpdater,
} from './registry/move-policy.ts'
export { ethersPolicyUpdater, moveCapsulePolicy } from './registry/move-policy.ts'
export { transactorCapsuleRegistrar } from './registry/transactor-registrar.ts'
export type { CapsuleRegistrar, CapsuleRegistration, ChainContracts } from './registry/types.ts'
export { checkSealInput, sealAndPublish } from './seal/seal-and-publish.ts'
export type {
  KeyRecordSink,
  SealAndPublishComponents,
  SealAndPublishParameters,
  SealAndPublishResult,
  SealProgressFn,
  SealStage,
} from './seal/types.ts'
export { pinCapsules } from './store/pin-capsules.ts'
export { keyguardCard, parseKeyguardCard } from './wrapping/card.ts'
export { publicKeyWrapper } from './wrapping/public-key-wrapper.ts'
export type { KeyguardCard, KeyWrapper } from './wrapping/types.ts'
