import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import * as files from '../src/files.ts'
import * as keyguard from '../src/index.ts'
import * as testing from '../src/testing.ts'

describe('public surface', () => {
  it('exports exactly these names (a change here is a deliberate API change)', () => {
    expect(Object.keys(keyguard).sort()).toMatchInlineSnapshot(`
      [
        "AlreadyReleasedError",
        "AwaitingVerdictError",
        "ChainMismatchError",
        "DEFAULT_POLICY_PCRS",
        "DEFAULT_RELEASE_PCR",
        "DEFAULT_TPM2_HANDLE",
        "EPOCH_POLICY_REF",
        "ETHEREUM_PATH",
        "FINALITY_LAG_SHARE",
        "FastPathConfigError",
        "FinalityLagError",
        "GrantKeyMismatchError",
        "GrantRefusedError",
        "HOST_SECRETS_TPM2_HANDLE",
        "HOST_SOFTWARE_KEY_FILE",
        "InvalidMnemonicError",
        "KeyExistsError",
        "KeyStoreCorruptError",
        "KeyguardStateError",
        "LIBP2P_SEED_INFO",
        "MAX_EXECUTOR_KEY_BYTES",
        "MAX_METADATA_ENTRIES",
        "MAX_WRAPPED_KEYS",
        "NotAttestedError",
        "OPERATOR_PATH",
        "POLICY_AUTH_KEY_INFO",
        "PolicyFollowError",
        "QuorumError",
        "RECOVERY_KEY_INFO",
        "RECOVERY_WRAP_AAD",
        "REPROVISION_HINT",
        "ROLE_EXECUTOR",
        "RSA_OAEP_MAX_PLAINTEXT",
        "RecoveryKeyMismatchError",
        "ReleaseFailedError",
        "ReleaseNotBegunError",
        "SEALED_SECRETS_KIND",
        "SealerRefusedError",
        "TPM2_KEY_RECORD_FILE",
        "TPM2_KEY_RECORD_KIND",
        "TpmBusyError",
        "TpmCommandError",
        "TpmHandleError",
        "TpmIdentityError",
        "TpmPolicyError",
        "TpmSessionError",
        "TpmUnavailableError",
        "UnwrapError",
        "WRAP_SCHEMES",
        "advanceEpoch",
        "approvalIsValid",
        "attestationGate",
        "auditAlertReason",
        "auditBlame",
        "authorizePcrPolicy",
        "canonicalId",
        "committeeGate",
        "createConnectionGuard",
        "createKeyStore",
        "createKeyguard",
        "createReleaseJournal",
        "deriveOwnerIdentity",
        "derivePolicyAuthKey",
        "ekActivationText",
        "epochIndexFor",
        "epochIndexPublic",
        "ethereumAddress",
        "ethersChainClient",
        "expectedReleasePcr",
        "fastPathServer",
        "followCapsulePolicy",
        "generateMnemonic",
        "grantWatcher",
        "hostSealer",
        "initOwner",
        "keyPolicyAuthorize",
        "keyPolicyView",
        "keyReleaser",
        "measureRelease",
        "mnemonicEntropy",
        "mnemonicFromEntropy",
        "normalizeMnemonic",
        "notAttestedReason",
        "openNodeSecrets",
        "openSealedSecrets",
        "parseEkRoots",
        "peerIdFromRegistered",
        "readEkRoots",
        "readEpochState",
        "readKeyRecord",
        "readOwner",
        "readPcrValues",
        "readSealedSecrets",
        "rebuildKeyStore",
        "recoverKeys",
        "recoveryKeyId",
        "releaseMeasurement",
        "renderKeyPolicy",
        "restoreOwner",
        "rsaPublicKey",
        "sealNodeSecrets",
        "signPcrApproval",
        "softwareSealer",
        "stderrLogger",
        "tpm2Sealer",
        "unwrapDataKey",
        "unwrapOwnerEthereumKey",
        "unwrapOwnerSecrets",
        "unwrapWithRecoveryKey",
        "wipeOwnerIdentity",
        "wrapDataKey",
        "wrapToRecoveryKey",
        "wrapWithPublicKey",
        "writeSealedSecrets",
      ]
    `)
    expect(Object.keys(testing).sort()).toEqual(['startSwtpm'])
  })

  it('gives every error a stable name and code, and subclasses DigicapError', () => {
    const errors = Object.entries(keyguard).filter(([name]) => name.endsWith('Error'))
    const codes = Object.fromEntries(
      errors.map(([name, E]) => {
        const err = new (E as new (m: string) => DigicapError)('m')
        expect(err).toBeInstanceOf(DigicapError)
        expect(err.name).toBe(name)
        return [name, err.code]
      }),
    )
    expect(codes).toMatchInlineSnapshot(`
      {
        "AlreadyReleasedError": "ALREADY_RELEASED",
        "AwaitingVerdictError": "AWAITING_VERDICT",
        "ChainMismatchError": "CHAIN_MISMATCH",
        "FastPathConfigError": "FAST_PATH_CONFIG",
        "FinalityLagError": "FINALITY_LAG",
        "GrantKeyMismatchError": "GRANT_KEY_MISMATCH",
        "GrantRefusedError": "GRANT_REFUSED",
        "InvalidMnemonicError": "INVALID_MNEMONIC",
        "KeyExistsError": "KEY_EXISTS",
        "KeyStoreCorruptError": "KEY_STORE_CORRUPT",
        "KeyguardStateError": "KEYGUARD_STATE",
        "NotAttestedError": "NOT_ATTESTED",
        "PolicyFollowError": "POLICY_FOLLOW",
        "QuorumError": "RPC_QUORUM",
        "RecoveryKeyMismatchError": "RECOVERY_KEY_MISMATCH",
        "ReleaseFailedError": "RELEASE_FAILED",
        "ReleaseNotBegunError": "RELEASE_NOT_BEGUN",
        "SealerRefusedError": "SEALER_REFUSED",
        "TpmBusyError": "TPM_BUSY",
        "TpmCommandError": "TPM_COMMAND",
        "TpmHandleError": "TPM_HANDLE",
        "TpmIdentityError": "TPM_IDENTITY",
        "TpmPolicyError": "TPM_POLICY",
        "TpmSessionError": "TPM_SESSION",
        "TpmUnavailableError": "TPM_UNAVAILABLE",
        "UnwrapError": "UNWRAP",
      }
    `)
  })

  it("the files entry (ADR 0051) holds the main entry's own objects", () => {
    expect(Object.keys(files).sort()).toMatchInlineSnapshot(`
      [
        "TPM2_KEY_RECORD_FILE",
        "createKeyStore",
        "readOwner",
        "softwareSealer",
        "tpm2Sealer",
      ]
    `)
    for (const [name, value] of Object.entries(files)) {
      expect(value, name).toBe(keyguard[name as keyof typeof keyguard])
    }
  })
})
