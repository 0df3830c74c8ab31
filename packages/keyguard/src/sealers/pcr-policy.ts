/**
 * The owner's side of the PCR-bound wrapping key: an authorizing P-256 key derived from the
 * paper words (so a new PCR set can be approved after an OS update from the words alone, even
 * when the TPM refuses to unwrap anything), and the signed approval of a PCR set.
 *
 * The wrapping key's `authPolicy` is `PolicyAuthorize(authKey)`: it names the key, not PCR
 * values, so approving new values never re-wraps a capsule key. An approval is
 * `PolicyPCR(pcrs, SHA-256 of their values)` signed (ECDSA P-256, SHA-256) by the authorizing key.
 *
 * ADR 0094 (rollback): a key made since has `authPolicy = PolicyAuthorize(authKey,
 * EPOCH_POLICY_REF)`, and its approvals are `PolicyPCR(…)` then `PolicyNV(epoch index, EQ
 * epoch)` on an NV counter only the owner's key can increment: approving new values bumps the
 * counter, so every older approval stops satisfying the TPM. The policyRef keeps approvals
 * without an epoch (all the owner's approvals for older keys) from ever unlocking such a key.
 */
import {
  approvalHash,
  counterBytes,
  type NvPublic,
  normalizePcrs,
  type P256PublicKey,
  type PolicyApproval,
  p256VerifyKeyPublic,
  pcrDigest,
  policyNvDigest,
  policyPcrDigest,
  policySignedDigest,
  TPM_ALG,
  TPM_EO,
  TPMA_NV,
} from '@digicap/tpm'
import { mapHashToField } from '@noble/curves/abstract/modular.js'
import { p256 } from '@noble/curves/nist.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'

/** HKDF `info` of the PCR-policy authorizing key (P-256) derived from the mnemonic's seed. */
export const POLICY_AUTH_KEY_INFO = 'digicap/tpm-policy-p256/v1'

/** The PCRs a PCR-bound key covers by default: the boot chain (firmware, boot loader, Secure Boot state). */
export const DEFAULT_POLICY_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7]

/**
 * The policyRef of a rollback-protected key's PolicyAuthorize (ADR 0094): the owner's key signs
 * `H(approvedPolicy ‖ EPOCH_POLICY_REF)` for it, so no approval signed for an older key (empty
 * policyRef, no PolicyNV) can unlock it.
 */
export const EPOCH_POLICY_REF: Uint8Array = new TextEncoder().encode(
  'digicap/pcr-approval-epoch/v1',
)

/** How an owner moves an older PCR-bound key to a rollback-protected one (ADR 0094). */
export const REPROVISION_HINT =
  'Re-provision: set sealer.handle in config.json to a free handle (e.g. 0x81000011) and run pi-node recover < words.txt; it creates a rollback-protected key there and re-wraps every capsule key to it.'

/** The key's NV epoch counter: the owner index paired with the key's persistent handle. */
export function epochIndexFor(keyHandle: number): number {
  return 0x01800000 | (keyHandle & 0x3fffff)
}

/**
 * The epoch counter's public area (ADR 0094). `TPM_NT_COUNTER` (monotonic: the TPM never lets
 * a counter, even one undefined and defined again, go below the highest value it held);
 * `POLICYWRITE` with `authPolicy = PolicySigned(authKey, writeRef)`: only the owner's key
 * increments it (`writeRef` is random per definition, so the index's name, and every
 * approval naming it, is unique to this TPM and this definition); `AUTHREAD` with an empty
 * authValue: PolicyNV reads it at every unwrap; `NO_DA`: a lockout does not stop the unwrap.
 */
export function epochIndexPublic(
  index: number,
  authKey: P256PublicKey,
  writeRef: Uint8Array,
  written = true,
): NvPublic {
  return {
    index,
    nameAlg: TPM_ALG.SHA256,
    attributes:
      TPMA_NV.counter |
      TPMA_NV.policyWrite |
      TPMA_NV.authRead |
      TPMA_NV.noDA |
      (written ? TPMA_NV.written : 0),
    authPolicy: policySignedDigest(new Uint8Array(32), p256VerifyKeyPublic(authKey).name, writeRef),
    dataSize: 8,
  }
}

/** The approved policy of an epoch approval: PolicyPCR, then PolicyNV(index, EQ epoch). */
function epochPolicy(
  pcrPolicy: Uint8Array,
  epoch: NonNullable<PolicyApproval['epoch']>,
): Uint8Array {
  return policyNvDigest(pcrPolicy, epoch.name, counterBytes(epoch.value), 0, TPM_EO.EQ)
}

export interface PolicyAuthKey {
  /** 32-byte P-256 scalar. Secret: wipe it after use. */
  privateKey: Uint8Array
  publicKey: P256PublicKey
}

/**
 * Derives the authorizing key from the mnemonic (BIP-39 seed → HKDF-SHA-256 with
 * {@link POLICY_AUTH_KEY_INFO}, 48 bytes reduced into the P-256 scalar field).
 * @throws {InvalidMnemonicError} for words that are not a valid mnemonic.
 */
export async function derivePolicyAuthKey(
  mnemonic: string,
  passphrase = '',
): Promise<PolicyAuthKey> {
  // The mnemonic code loads here, not with the module: a TPM sealer that only reads its key
  // record (approvalIsValid) does not need it (ADR 0051).
  const [{ mnemonicToSeedWebcrypto }, { normalizeMnemonic }] = await Promise.all([
    import('@scure/bip39'),
    import('../recovery/recovery.ts'),
  ])
  const seed = await mnemonicToSeedWebcrypto(normalizeMnemonic(mnemonic), passphrase)
  const okm = hkdf(sha256, seed, undefined, new TextEncoder().encode(POLICY_AUTH_KEY_INFO), 48)
  seed.fill(0)
  const privateKey = mapHashToField(okm, p256.Point.Fn.ORDER)
  okm.fill(0)
  const point = p256.getPublicKey(privateKey, false)
  return { privateKey, publicKey: { x: point.slice(1, 33), y: point.slice(33, 65) } }
}

/** An approval with the PCR values it was computed from (to say which PCRs differ later). */
export interface PcrApproval extends PolicyApproval {
  readonly pcrValues: ReadonlyMap<number, Uint8Array>
}

/**
 * Signs an approval of `values` (the PCRs' expected SHA-256 values) with the authorizing key.
 * With `epoch` (a rollback-protected key, ADR 0094) the approval holds only while the epoch
 * counter `epoch.name` holds `epoch.value`.
 */
export function signPcrApproval(
  key: PolicyAuthKey,
  pcrs: readonly number[],
  values: ReadonlyMap<number, Uint8Array>,
  epoch?: NonNullable<PolicyApproval['epoch']>,
): PcrApproval {
  const selected = normalizePcrs(pcrs)
  const digest = pcrDigest(values, selected)
  const pcrOnly = policyPcrDigest(selected, digest)
  const approvedPolicy = epoch === undefined ? pcrOnly : epochPolicy(pcrOnly, epoch)
  const policyRef = epoch === undefined ? new Uint8Array(0) : EPOCH_POLICY_REF
  const signature = p256.sign(approvalHash(approvedPolicy, policyRef), key.privateKey, {
    prehash: false,
  })
  return {
    pcrs: selected,
    pcrDigest: digest,
    approvedPolicy,
    authKey: key.publicKey,
    signature: { r: signature.slice(0, 32), s: signature.slice(32, 64) },
    pcrValues: new Map(selected.map((p) => [p, values.get(p) as Uint8Array])),
    ...(epoch === undefined ? {} : { epoch, policyRef: EPOCH_POLICY_REF }),
  }
}

/** Signs a digest with the authorizing key (PolicySigned of an epoch increment). */
export function signDigest(key: PolicyAuthKey, digest: Uint8Array) {
  const signature = p256.sign(digest, key.privateKey, { prehash: false })
  return { r: signature.slice(0, 32), s: signature.slice(32, 64) }
}

/** Checks an approval in software: consistent digests and a valid signature by `authKey`. */
export function approvalIsValid(approval: PcrApproval, authKey: P256PublicKey): boolean {
  try {
    const digest = pcrDigest(approval.pcrValues, approval.pcrs)
    if (!Buffer.from(digest).equals(Buffer.from(approval.pcrDigest))) return false
    const pcrOnly = policyPcrDigest(approval.pcrs, digest)
    const policy = approval.epoch === undefined ? pcrOnly : epochPolicy(pcrOnly, approval.epoch)
    if (!Buffer.from(policy).equals(Buffer.from(approval.approvedPolicy))) return false
    const policyRef = approval.epoch === undefined ? new Uint8Array(0) : EPOCH_POLICY_REF
    if (!Buffer.from(policyRef).equals(Buffer.from(approval.policyRef ?? new Uint8Array(0))))
      return false
    if (
      !Buffer.from(authKey.x).equals(Buffer.from(approval.authKey.x)) ||
      !Buffer.from(authKey.y).equals(Buffer.from(approval.authKey.y))
    )
      return false
    const sig = new Uint8Array(64)
    sig.set(approval.signature.r, 32 - approval.signature.r.length)
    sig.set(approval.signature.s, 64 - approval.signature.s.length)
    const point = new Uint8Array(65)
    point[0] = 4
    point.set(authKey.x, 1)
    point.set(authKey.y, 33)
    return p256.verify(sig, approvalHash(policy, policyRef), point, { prehash: false })
  } catch {
    return false
  }
}
