/**
 * `moveCapsulePolicy`: the owner moves a capsule to another policy contract, on chain and in the
 * keyguard's key record (ADR 0077). The keyguard releases a key only while the capsule's on-chain
 * policy is the one its key record names (ADR 0071), so both must move, in this order:
 *
 * 1. The record follows what the confirmed chain holds now (`followCapsulePolicy` of
 *    `@digicap/keyguard`) when that is the record's policy or the new one: a move a crash
 *    interrupted is finished first, and a capsule whose on-chain owner is not the record's, that
 *    is revoked, or whose chain holds a third policy (`unexpected-policy`) stops here with
 *    nothing sent or written.
 * 2. `CapsuleRegistry.updatePolicy` from the owner account (skipped when the chain holds the new
 *    policy already), to its receipt.
 * 3. Once the keyguard's chain client (its confirmations, its RPC quorum) reads the new policy,
 *    the record names it.
 *
 * Between 2 and 3 the chain and the record disagree and every grant is refused `policy-mismatch`:
 * the move fails closed (no key goes out under either policy meanwhile). A crash or a timeout
 * there is recovered by running the same call again (or any later one for the capsule): step 1
 * finishes it from the chain, and step 2 is skipped. The record is never written ahead of the
 * chain, so a transaction that reverts (`NotCapsuleOwner`, `InvalidPolicy`, `CapsuleIsRevoked`)
 * leaves it as it was.
 */
import { connectDigicap, withRevertDecoding } from '@digicap/contracts'
import type { ChainClient, KeyStore } from '@digicap/keyguard'
import { followCapsulePolicy, PolicyFollowError } from '@digicap/keyguard'
import { getAddress, isAddress, type Signer } from 'ethers'
import type { TransactionSerializer } from '../policy/types.ts'
import type { ChainContracts } from './types.ts'

/** Sends `CapsuleRegistry.updatePolicy` from the owner account and waits for its receipt. */
export interface PolicyUpdater {
  /** @throws the chain's decoded revert (`ContractRevertError`) or the RPC's error. */
  updatePolicy(capsuleId: string, policy: string): Promise<{ transactionHash: string }>
}

/**
 * A {@link PolicyUpdater} over an ethers signer (the capsule's owner account).
 *
 * @example
 * ```ts
 * const updater = ethersPolicyUpdater(ownerWallet, { contracts })
 * ```
 */
export function ethersPolicyUpdater(
  signer: Signer,
  init: { contracts: ChainContracts; serialize?: TransactionSerializer },
): PolicyUpdater {
  const serialize = init.serialize ?? ((fn) => fn())
  const { capsuleRegistry } = connectDigicap(init.contracts, signer)
  return {
    updatePolicy(capsuleId, policy) {
      return serialize(async () => {
        const sent = await withRevertDecoding(capsuleRegistry.updatePolicy(capsuleId, policy))
        await withRevertDecoding(sent.wait())
        return { transactionHash: sent.hash }
      })
    },
  }
}

export interface MoveCapsulePolicyParams {
  /** 0x-prefixed 32-byte capsule id. */
  capsuleId: string
  /** The new policy contract's address. */
  policy: string
  /** How long step 3 waits for the keyguard's chain client to read the new policy, ms. Default 120 000. */
  confirmTimeoutMs?: number
  /** How often it reads, ms. Default 1000. */
  pollMs?: number
}

export interface MoveCapsulePolicyComponents {
  updater: PolicyUpdater
  /** The keyguard's key store (the data dir's `keys/`). */
  keyStore: Pick<KeyStore, 'get' | 'put'>
  /** The keyguard's chain client: the record follows what it reads (confirmations, quorum). */
  chain: Pick<ChainClient, 'capsuleRecord'>
  /** The keyguard's `owners`, for records that do not name their owner (ADR 0071). */
  owners?: readonly string[]
}

export interface MoveCapsulePolicyResult {
  capsuleId: string
  /** The policy before (checksummed; the confirmed chain's when the call began). */
  previousPolicy: string
  policy: string
  /** The `updatePolicy` transaction; absent when the chain held the policy already (a re-run). */
  transactionHash?: string
  /** Whether the key record was written (by step 1 or 3). */
  recordUpdated: boolean
}

/**
 * Moves `capsuleId` to `policy` on chain and in the keyguard's key record (see the module doc).
 *
 * @throws {TypeError} when `policy` or `capsuleId` is malformed (nothing sent).
 * @throws {PolicyFollowError} `unknown-capsule`, `not-owner`, `revoked`, `unexpected-policy`
 *   (the chain holds neither the record's policy nor `policy`: nothing sent, nothing written);
 *   `not-on-chain` when the keyguard's chain client did not read the new policy within
 *   `confirmTimeoutMs` (sent: run the same call again to finish).
 * @throws the chain's decoded revert (`ContractRevertError`) when `updatePolicy` reverts (the
 *   record unchanged).
 * @example
 * ```ts
 * const moved = await moveCapsulePolicy(
 *   { capsuleId, policy: newPolicy },
 *   { updater: ethersPolicyUpdater(owner, { contracts }), keyStore, chain: keyguardChain },
 * )
 * ```
 */
export async function moveCapsulePolicy(
  params: MoveCapsulePolicyParams,
  components: MoveCapsulePolicyComponents,
): Promise<MoveCapsulePolicyResult> {
  const { capsuleId } = params
  if (!/^0x[0-9a-fA-F]{64}$/.test(capsuleId)) {
    throw new TypeError(`capsuleId must be 0x and 64 hex digits, got ${String(capsuleId)}`)
  }
  if (typeof params.policy !== 'string' || !isAddress(params.policy)) {
    throw new TypeError(`policy must be an address, got ${String(params.policy)}`)
  }
  const policy = getAddress(params.policy)
  const { keyStore, chain } = components
  const owners = components.owners === undefined ? {} : { owners: components.owners }
  // 1. The record follows the confirmed chain (finishes an interrupted move; checks the owner),
  //    but only to the policy it names already or to the new one: a third policy on chain came
  //    from an updatePolicy this call did not send (another tool, a stolen owner key), and
  //    adopting it would lift the record's pin (ADR 0071) until step 3.
  const recorded = (await keyStore.get(capsuleId))?.metadata.policy
  const allowed =
    recorded !== undefined && isAddress(recorded) ? [getAddress(recorded), policy] : undefined
  let before: Awaited<ReturnType<typeof followCapsulePolicy>>
  try {
    before = await followCapsulePolicy({ keyStore, chain }, capsuleId, {
      ...owners,
      ...(allowed === undefined ? {} : { expect: allowed }),
    })
  } catch (err) {
    if (!(err instanceof PolicyFollowError && err.details.reason === 'not-on-chain')) throw err
    throw new PolicyFollowError('The chain holds a policy this owner did not move the capsule to', {
      details: {
        capsuleId,
        reason: 'unexpected-policy',
        recorded: allowed?.[0],
        target: policy,
        policy: err.details.policy,
      },
      hint: 'Someone with the owner key called updatePolicy. Check the owner key; if the change is yours, move the capsule to that policy explicitly.',
      cause: err,
    })
  }
  let recordUpdated = before.changed
  if (before.policy === policy) {
    return { capsuleId, previousPolicy: before.policy, policy, recordUpdated }
  }
  // 2. On chain. From here until 3, every grant is refused policy-mismatch (fails closed).
  const { transactionHash } = await components.updater.updatePolicy(capsuleId, policy)
  // 3. The record follows once the keyguard's client reads it (its confirmations).
  const deadline = Date.now() + (params.confirmTimeoutMs ?? 120_000)
  for (;;) {
    try {
      const after = await followCapsulePolicy({ keyStore, chain }, capsuleId, {
        ...owners,
        expect: policy,
      })
      recordUpdated ||= after.changed
      return { capsuleId, previousPolicy: before.policy, policy, transactionHash, recordUpdated }
    } catch (err) {
      const notYet = err instanceof PolicyFollowError && err.details.reason === 'not-on-chain'
      if (!notYet || Date.now() >= deadline) throw err
    }
    await new Promise((r) => setTimeout(r, params.pollMs ?? 1000))
  }
}
