/**
 * The capsule check, before any unwrap on both paths (ADR 0071): the CapsuleRegistry's record of
 * the capsule, read at the pinned block, must match what the key record says the owner sealed.
 *
 * `CapsuleRegistry.register` takes any capsule id first come first served, and the owner's
 * pipeline hands the wrapped key to the key store before its `register` is mined. Whoever
 * front-runs that `register` owns the id on chain and picks its policy; a keyguard that only
 * asks the policy would release the owner's data key under the squatter's rule. So:
 *
 * - `not-owner`: the capsule's on-chain owner is not the key record's `metadata.owner` (or,
 *   for a record that names none, not one of the keyguard's `owners`); also when the capsule is
 *   not registered, or neither names an owner (fail closed).
 * - `revoked`: the owner revoked the capsule (`accessInfo`): a grant made before the revocation
 *   (an executor that front-ran `revoke`, or a keyguard behind) is not served.
 * - `policy-mismatch`: the record names a `metadata.policy` and the capsule's on-chain policy is
 *   another. An owner who moves a capsule to a new policy (`updatePolicy`) updates the record.
 */
import { getAddress, isAddress, ZeroAddress } from 'ethers'
import type { CapsuleRecord } from '../chain/chain-client.ts'
import type { KeyRecord } from '../store/key-store.ts'

/** Why the capsule check refused (the `reason` of `grant-refused` / the fast path's refusal). */
export type CapsuleRefusalReason = 'not-owner' | 'revoked' | 'policy-mismatch'

export interface CapsuleRefusal {
  reason: CapsuleRefusalReason
  /**
   * `not-registered`, `no-owner-known` (neither the record nor the keyguard names an owner),
   * `bad-record` (the record's owner or policy is not an address), `other-owner`, `revoked`,
   * `other-policy`.
   */
  detail: string
}

const norm = (a: string): string | undefined => (isAddress(a) ? getAddress(a) : undefined)

/**
 * `undefined` when `onChain` matches `record`; else why not.
 *
 * @param owners the keyguard's owner accounts, for records that do not name theirs.
 * @example
 * ```ts
 * const refusal = capsuleRefusal(record, await chain.capsuleRecord(capsuleId), [owner])
 * if (refusal) refuse(grantId, refusal.reason)
 * ```
 */
export function capsuleRefusal(
  record: Pick<KeyRecord, 'metadata'>,
  onChain: CapsuleRecord,
  owners: readonly string[] = [],
): CapsuleRefusal | undefined {
  const actual = norm(onChain.owner)
  if (actual === undefined || actual === ZeroAddress) {
    return { reason: 'not-owner', detail: 'not-registered' }
  }
  const named = record.metadata.owner
  let expected: (string | undefined)[]
  if (named !== undefined) expected = [norm(named)]
  else expected = owners.map(norm)
  if (expected.length === 0) return { reason: 'not-owner', detail: 'no-owner-known' }
  if (expected.includes(undefined)) return { reason: 'not-owner', detail: 'bad-record' }
  if (!expected.includes(actual)) return { reason: 'not-owner', detail: 'other-owner' }
  if (onChain.revoked) return { reason: 'revoked', detail: 'revoked' }
  const policy = record.metadata.policy
  if (policy !== undefined) {
    const want = norm(policy)
    if (want === undefined) return { reason: 'policy-mismatch', detail: 'bad-record' }
    if (want !== norm(onChain.policy)) return { reason: 'policy-mismatch', detail: 'other-policy' }
  }
  return undefined
}
