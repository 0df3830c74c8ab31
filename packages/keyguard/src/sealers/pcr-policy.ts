/**
 * The owner's side of the PCR-bound wrapping key: an authorizing P-256 key derived from the
 * paper words (so a new PCR set can be approved after an OS update from the words alone, even
 * when the TPM refuses to unwrap anything), and the signed approval of a PCR set.
 *
 * The wrapping key's `authPolicy` is `PolicyAuthorize(authKey)`: it names the key, not PCR
 * values, so approving new values never re-wraps a capsule key. An approval is
 * `PolicyPCR(pcrs, SHA-256 of their values)` signed (ECDSA P-256, SHA-256) by the authorizing key.
 */
import {
  approvalHash,
  normalizePcrs,
  type P256PublicKey,
  type PolicyApproval,
  pcrDigest,
  policyPcrDigest,
} from '@digicap/tpm'
import { mapHashToField } from '@noble/curves/abstract/modular.js'
import { p256 } from '@noble/curves/nist.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'

/** HKDF `info` of the PCR-policy authorizing key (P-256) derived from the mnemonic's seed. */
export const POLICY_AUTH_KEY_INFO = 'digicap/tpm-policy-p256/v1'

/** The PCRs a PCR-bound key covers by default: the boot chain (firmware, boot loader, Secure Boot state). */
export const DEFAULT_POLICY_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7]

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

/** Signs an approval of `values` (the PCRs' expected SHA-256 values) with the authorizing key. */
export function signPcrApproval(
  key: PolicyAuthKey,
  pcrs: readonly number[],
  values: ReadonlyMap<number, Uint8Array>,
): PcrApproval {
  const selected = normalizePcrs(pcrs)
  const digest = pcrDigest(values, selected)
  const approvedPolicy = policyPcrDigest(selected, digest)
  const signature = p256.sign(approvalHash(approvedPolicy), key.privateKey, { prehash: false })
  return {
    pcrs: selected,
    pcrDigest: digest,
    approvedPolicy,
    authKey: key.publicKey,
    signature: { r: signature.slice(0, 32), s: signature.slice(32, 64) },
    pcrValues: new Map(selected.map((p) => [p, values.get(p) as Uint8Array])),
  }
}

/** Checks an approval in software: consistent digests and a valid signature by `authKey`. */
export function approvalIsValid(approval: PcrApproval, authKey: P256PublicKey): boolean {
  try {
    const digest = pcrDigest(approval.pcrValues, approval.pcrs)
    if (!Buffer.from(digest).equals(Buffer.from(approval.pcrDigest))) return false
    const policy = policyPcrDigest(approval.pcrs, digest)
    if (!Buffer.from(policy).equals(Buffer.from(approval.approvedPolicy))) return false
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
    return p256.verify(sig, approvalHash(policy), point, { prehash: false })
  } catch {
    return false
  }
}
