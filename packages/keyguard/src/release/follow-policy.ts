/**
 * A key record follows its capsule to a new policy (ADR 0077). The capsule check (capsule-check.ts,
 * ADR 0071) refuses every grant whose capsule's on-chain policy is not the record's
 * `metadata.policy`, so after a legitimate `CapsuleRegistry.updatePolicy` the record must name the
 * new policy. The record is changed only to what the chain holds, read through the keyguard's
 * (quorum, pinned) chain client, and only for a capsule whose on-chain owner is the record's
 * owner and which is not revoked: only that owner can move the policy on chain (the registry's
 * `NotCapsuleOwner`), so nobody else can move the record. Nothing here is sent to the chain.
 */
import { getAddress, isAddress } from 'ethers'
import type { ChainClient } from '../chain/chain-client.ts'
import { PolicyFollowError } from '../errors.ts'
import type { KeyStore } from '../store/key-store.ts'
import { capsuleRefusal } from './capsule-check.ts'

export interface FollowCapsulePolicyOptions {
  /** The keyguard's owner accounts, for records that do not name theirs (as `owners`, ADR 0071). */
  owners?: readonly string[]
  /**
   * The policy the chain must hold (checksummed or not), or a list of those it may hold: refused
   * `not-on-chain` while the confirmed chain holds another, so a caller that just sent
   * `updatePolicy` never writes an older policy. Default: whatever the chain holds.
   */
  expect?: string | readonly string[]
}

export interface FollowCapsulePolicyResult {
  capsuleId: string
  /** The record's policy before (absent when it named none). */
  previousPolicy?: string
  /** The policy the record names now (checksummed): the chain's. */
  policy: string
  /** Whether the record was written (false: it named the chain's policy already). */
  changed: boolean
}

/**
 * Points the key record of `capsuleId` at the policy its capsule has on chain.
 *
 * @throws {PolicyFollowError} `unknown-capsule`, `not-owner`, `revoked`, `not-on-chain`;
 *   nothing is written.
 * @throws {QuorumError} when the RPCs disagree (nothing is written).
 * @example
 * ```ts
 * // after the owner's updatePolicy(capsuleId, policy) is confirmed
 * await followCapsulePolicy({ keyStore, chain }, capsuleId, { expect: policy })
 * ```
 */
export async function followCapsulePolicy(
  components: {
    keyStore: Pick<KeyStore, 'get' | 'put'>
    chain: Pick<ChainClient, 'capsuleRecord'>
  },
  capsuleId: string,
  options: FollowCapsulePolicyOptions = {},
): Promise<FollowCapsulePolicyResult> {
  const { keyStore, chain } = components
  const record = await keyStore.get(capsuleId)
  if (record === undefined) {
    throw new PolicyFollowError('This keyguard holds no key for the capsule', {
      details: { capsuleId, reason: 'unknown-capsule' },
      hint: 'Run it on the keyguard that holds the capsule key (pi-node status lists them).',
    })
  }
  const onChain = await chain.capsuleRecord(capsuleId)
  const { policy: _named, ...withoutPolicy } = record.metadata
  const refusal = capsuleRefusal({ metadata: withoutPolicy }, onChain, options.owners)
  if (refusal !== undefined) {
    throw new PolicyFollowError(
      refusal.reason === 'revoked'
        ? 'The capsule is revoked: its record stays as it is'
        : 'The capsule is not the record owner’s on chain: its record stays as it is',
      {
        details: { capsuleId, reason: refusal.reason, detail: refusal.detail },
        hint: 'Only the owner the key record names can move its capsule to another policy.',
      },
    )
  }
  if (options.expect !== undefined) {
    const expected = typeof options.expect === 'string' ? [options.expect] : options.expect
    for (const e of expected) {
      if (!isAddress(e)) throw new TypeError(`expect must be an address, got ${String(e)}`)
    }
    if (!expected.some((e) => getAddress(e) === onChain.policy)) {
      throw new PolicyFollowError('The confirmed chain does not hold that policy yet', {
        details: {
          capsuleId,
          reason: 'not-on-chain',
          expected:
            expected.length === 1
              ? getAddress(expected[0] as string)
              : expected.map((e) => getAddress(e)),
          policy: onChain.policy,
        },
        hint: 'Wait until the updatePolicy transaction is confirmed, then try again.',
      })
    }
  }
  const previous = record.metadata.policy
  const base = { capsuleId, ...(previous === undefined ? {} : { previousPolicy: previous }) }
  if (previous !== undefined && isAddress(previous) && getAddress(previous) === onChain.policy) {
    return { ...base, policy: onChain.policy, changed: false }
  }
  await keyStore.put(
    {
      capsuleId,
      wrappedKeys: record.wrappedKeys,
      metadata: { ...record.metadata, policy: onChain.policy },
    },
    { replace: true },
  )
  return { ...base, policy: onChain.policy, changed: true }
}
