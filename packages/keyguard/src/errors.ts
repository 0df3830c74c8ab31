/**
 * Typed errors of the keyguard. Every class has a stable `code`; messages and details carry
 * handles, ids, lengths and exit codes, never key material.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/**
 * The TPM errors (`TPM_UNAVAILABLE`, `TPM_BUSY`, `TPM_HANDLE`, `TPM_COMMAND`, `TPM_SESSION`) are defined in
 * `@digicap/tpm`, where the TPM transport lives, and re-exported here.
 */
export {
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmPolicyError,
  TpmSessionError,
  TpmUnavailableError,
} from '@digicap/tpm'

/** A sealer refused to start: the software sealer without `allowInsecure`, or an unsafe key file. */
export class SealerRefusedError extends DigicapError {
  override name = 'SealerRefusedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SEALER_REFUSED', shortMessage, options)
  }
}

/**
 * A wrapped key could not be unwrapped: wrong scheme or key id for this sealer, tampered or
 * truncated ciphertext, or a plaintext of the wrong length.
 */
export class UnwrapError extends DigicapError {
  override name = 'UnwrapError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('UNWRAP', shortMessage, options)
  }
}

/** A key-store or journal file exists but does not parse or does not match its schema. */
export class KeyStoreCorruptError extends DigicapError {
  override name = 'KeyStoreCorruptError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('KEY_STORE_CORRUPT', shortMessage, options)
  }
}

/** A key record for this capsule id already exists and the caller did not ask to replace it. */
export class KeyExistsError extends DigicapError {
  override name = 'KeyExistsError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('KEY_EXISTS', shortMessage, options)
  }
}

/** The grant was already served and acknowledged; it is never served again. */
export class AlreadyReleasedError extends DigicapError {
  override name = 'AlreadyReleasedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ALREADY_RELEASED', shortMessage, options)
  }
}

/** The grant was begun for a different executor key; a grant is bound to one key forever. */
export class GrantKeyMismatchError extends DigicapError {
  override name = 'GrantKeyMismatchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('GRANT_KEY_MISMATCH', shortMessage, options)
  }
}

/** The words are not a valid BIP-39 English mnemonic (unknown word, bad checksum, wrong count). */
export class InvalidMnemonicError extends DigicapError {
  override name = 'InvalidMnemonicError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INVALID_MNEMONIC', shortMessage, options)
  }
}

/** The mnemonic does not derive the recovery key the stored keys were wrapped to. */
export class RecoveryKeyMismatchError extends DigicapError {
  override name = 'RecoveryKeyMismatchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RECOVERY_KEY_MISMATCH', shortMessage, options)
  }
}

/** `complete()` was called for a grant the journal never began. */
export class ReleaseNotBegunError extends DigicapError {
  override name = 'ReleaseNotBegunError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RELEASE_NOT_BEGUN', shortMessage, options)
  }
}

/** The RPC's `eth_chainId` is not the configured chain id: the keyguard refuses to start. */
export class ChainMismatchError extends DigicapError {
  override name = 'ChainMismatchError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CHAIN_MISMATCH', shortMessage, options)
  }
}

/**
 * A grant the keyguard will not serve. `details.reason`: `foreign-contract`, `not-found`,
 * `expired`, `mismatch` (the log does not match the stored grant), `unknown-capsule`,
 * `replayed` (already served), `key-mismatch`.
 */
export class GrantRefusedError extends DigicapError {
  override name = 'GrantRefusedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('GRANT_REFUSED', shortMessage, options)
  }
}

/** The executor's peer cannot be reached or did not acknowledge before the grant expired. */
export class ReleaseFailedError extends DigicapError {
  override name = 'ReleaseFailedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RELEASE_FAILED', shortMessage, options)
  }
}

/**
 * The TPM key about to be pinned (init, recover, first use) is not proven to live in a TPM whose
 * maker certified its EK (ADR 0097), so nothing was pinned. `details.reason`: `no-ek-roots` (a
 * hardware TPM and no makers' roots configured), `no-ek-certificate` (the TPM's NV holds no RSA
 * EK certificate), `ek-untrusted` (`details.check` the certificate check's reason: `untrusted`,
 * `expired`, `malformed`…), `ek-mismatch` (the TPM's EK is not the certified key),
 * `activation-refused` (the certified EK's TPM does not hold the key that was read: a key of
 * another TPM was shown, as an interposer on the bus would).
 */
export class TpmIdentityError extends DigicapError {
  override name = 'TpmIdentityError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('TPM_IDENTITY', shortMessage, options)
  }
}

/** `start()` on a running keyguard, or a component missing. */
export class KeyguardStateError extends DigicapError {
  override name = 'KeyguardStateError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('KEYGUARD_STATE', shortMessage, options)
  }
}

/**
 * The capsule's policy requires `attested()` and the executor's TPM evidence was refused, so
 * nothing was unwrapped. `details.reason` is `@digicap/attestation`'s (`unregistered`,
 * `record-mismatch`, `evidence` with `details.check` = the failing `QUOTE_*` code,
 * `unreachable`); `details.executor`, `details.grantId`. The `cause` is the
 * `AttestationRefusedError`. On the chain path with a committee (ADR 0033): `committee-fail`
 * (the committee's before verdict is a fail) or `job-closed` (the job timed out, or was
 * certified without a before verdict); both final.
 */
export class NotAttestedError extends DigicapError {
  override name = 'NotAttestedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('NOT_ATTESTED', shortMessage, {
      hint: 'The executor must register its attestation record (executor-node register --tcti) and answer /digicap/attest/1.0.0 with PCR 23 at its reset value.',
      ...options,
    })
  }
}

/**
 * The chain path of an `attested()` capsule waits for the committee's "before" verdict on chain
 * (AttestationHub, ADR 0033), and it is not there yet at the confirmed block: the grant is held
 * (nothing unwrapped) and checked again. `details.reason`: `no-job` (the job id is unknown to the
 * hub at that block: nobody opened the job yet), `not-seated` (the sortition window is still open),
 * `no-verdict` (seated, no before certificate yet); `details.grantId`, `details.block` (the
 * confirmed block read). Not final: a {@link NotAttestedError} is.
 */
export class AwaitingVerdictError extends DigicapError {
  override name = 'AwaitingVerdictError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('AWAITING_VERDICT', shortMessage, {
      hint: 'Verifiers open the job, seat a committee and certify the executor before the run; the key is released once a pass is confirmed.',
      ...options,
    })
  }
}

/**
 * A key record cannot follow its capsule's on-chain policy (`followCapsulePolicy`, ADR 0077):
 * nothing was written. `details.reason`: `unknown-capsule` (no key record), `not-owner` (the
 * capsule's on-chain owner is not the record's: `details.detail` as the capsule check's),
 * `revoked`, `not-on-chain` (the confirmed chain does not hold `details.expected` yet:
 * `details.policy` is what it holds).
 */
export class PolicyFollowError extends DigicapError {
  override name = 'PolicyFollowError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('POLICY_FOLLOW', shortMessage, options)
  }
}

/**
 * The fast path's options leave a released key no time for its audit (ADR 0072, amended): the
 * accepted expiries run from `minAuditMarginSeconds` to `maxExpirySeconds` ahead, and that window
 * must be at least as long as the margin itself. `details`: `maxExpirySeconds`,
 * `minAuditMarginSeconds`, `least` (the smallest `maxExpirySeconds` accepted); or `option` and
 * `value` for an option that is not a whole number of seconds. Thrown when the keyguard is built.
 */
export class FastPathConfigError extends DigicapError {
  override name = 'FastPathConfigError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('FAST_PATH_CONFIG', shortMessage, options)
  }
}

/**
 * The confirmed block (`finality` `safe` / `finalized`, plus `confirmations`) trails the head by
 * more than half the AccessController's `grantWindow` (docs/adr/0082 amendment 2): every chain
 * grant would expire before, or soon after, the keyguard sees it. `details`: `finality`,
 * `confirmations`, `lagSeconds`, `grantWindowSeconds`, `limitSeconds`, `head`, `confirmed`.
 * Thrown by `start()`; while running, the same details come as a `finality-lag` event.
 */
export class FinalityLagError extends DigicapError {
  override name = 'FinalityLagError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('FINALITY_LAG', shortMessage, options)
  }
}
