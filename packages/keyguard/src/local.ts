/**
 * `@digicap/keyguard/local`: the keyguard's local parts only — the sealers (software, TPM,
 * host), the key store, the owner file, the recovery words and the sealed secrets. No chain
 * client, no libp2p, no release path: a one-shot command (`pi-node status`, `seal`) imports
 * this entry and starts without ethers or libp2p. The main entry re-exports all of it.
 */
export type { P256PublicKey } from '@digicap/tpm'
export type { InitOwnerOptions, OwnerInfo, OwnerSecrets } from './recovery/owner.ts'
export {
  initOwner,
  readOwner,
  restoreOwner,
  unwrapOwnerEthereumKey,
  unwrapOwnerSecrets,
} from './recovery/owner.ts'
export type {
  CapsuleDirectory,
  HeaderFetcher,
  KeyguardRecorder,
  OwnedCapsule,
  RebuildFailure,
  RebuildFailureReason,
  RebuildKeyStoreOptions,
  RebuildKeyStoreResult,
} from './recovery/rebuild-keys.ts'
export { rebuildKeyStore } from './recovery/rebuild-keys.ts'
export type { RecoverKeysOptions, RecoverKeysResult } from './recovery/recover-keys.ts'
export { recoverKeys } from './recovery/recover-keys.ts'
export type { OwnerIdentity } from './recovery/recovery.ts'
export {
  deriveOwnerIdentity,
  ETHEREUM_PATH,
  ethereumAddress,
  generateMnemonic,
  LIBP2P_SEED_INFO,
  normalizeMnemonic,
  OPERATOR_PATH,
  RECOVERY_KEY_INFO,
  recoveryKeyId,
  wipeOwnerIdentity,
} from './recovery/recovery.ts'
export type { EkActivationOptions, EkActivationRecord } from './sealers/ek-activation.ts'
export { ekActivationText } from './sealers/ek-activation.ts'
export type { AdvancedEpoch, EpochState } from './sealers/epoch.ts'
export { advanceEpoch, readEpochState } from './sealers/epoch.ts'
export type { HostSealerInit } from './sealers/host-sealer.ts'
export {
  HOST_SECRETS_TPM2_HANDLE,
  HOST_SOFTWARE_KEY_FILE,
  hostSealer,
} from './sealers/host-sealer.ts'
export {
  type KeyPolicyView,
  keyPolicyAuthorize,
  keyPolicyView,
  type PcrLine,
  renderKeyPolicy,
} from './sealers/key-policy-view.ts'
export { authorizePcrPolicy, readPcrValues } from './sealers/pcr-authorize.ts'
export type { PcrApproval, PolicyAuthKey } from './sealers/pcr-policy.ts'
export {
  approvalIsValid,
  DEFAULT_POLICY_PCRS,
  derivePolicyAuthKey,
  EPOCH_POLICY_REF,
  epochIndexFor,
  epochIndexPublic,
  POLICY_AUTH_KEY_INFO,
  REPROVISION_HINT,
  signPcrApproval,
} from './sealers/pcr-policy.ts'
export type { MeasureReleaseOptions, MeasureReleaseResult } from './sealers/release-pcr.ts'
export {
  DEFAULT_RELEASE_PCR,
  expectedReleasePcr,
  measureRelease,
  releaseMeasurement,
} from './sealers/release-pcr.ts'
export { RSA_OAEP_MAX_PLAINTEXT, rsaPublicKey, wrapWithPublicKey } from './sealers/rsa-oaep.ts'
export type { Sealer, SealerDescription, SealerPublicKey } from './sealers/sealer.ts'
export type { SoftwareSealerInit } from './sealers/software-sealer.ts'
export { softwareSealer } from './sealers/software-sealer.ts'
export type { Tpm2KeyPolicy, Tpm2KeyRecord } from './sealers/tpm2-key-record.ts'
export {
  readKeyRecord,
  TPM2_KEY_RECORD_FILE,
  TPM2_KEY_RECORD_KIND,
} from './sealers/tpm2-key-record.ts'
export type { Tpm2SealerInit } from './sealers/tpm2-sealer.ts'
export { DEFAULT_TPM2_HANDLE, tpm2Sealer } from './sealers/tpm2-sealer.ts'
export type { WrapDataKeyOptions } from './sealers/wrap.ts'
export {
  RECOVERY_WRAP_AAD,
  unwrapDataKey,
  unwrapWithRecoveryKey,
  wrapDataKey,
  wrapToRecoveryKey,
} from './sealers/wrap.ts'
export { canonicalId } from './store/ids.ts'
export type { KeyRecord, KeyStore, PutKeyRecord } from './store/key-store.ts'
export { createKeyStore, MAX_METADATA_ENTRIES, MAX_WRAPPED_KEYS } from './store/key-store.ts'
export type { NodeSecrets, NodeSecretsFiles } from './store/node-secrets.ts'
export { openNodeSecrets, sealNodeSecrets } from './store/node-secrets.ts'
export {
  mnemonicEntropy,
  mnemonicFromEntropy,
  openSealedSecrets,
  readSealedSecrets,
  SEALED_SECRETS_KIND,
  writeSealedSecrets,
} from './store/sealed-secrets.ts'
export type { Logger, WrappedKey, WrapScheme } from './types.ts'
export { stderrLogger, WRAP_SCHEMES } from './types.ts'
