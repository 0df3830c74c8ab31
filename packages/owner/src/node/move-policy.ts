/**
 * `OwnerNode.movePolicy`: `moveCapsulePolicy` (ADR 0077) from the node's config — the owner
 * account unwrapped by the sealer for the call, its transactions under the owner lock, the key
 * store of the data folder, and a chain client over the same RPCs and quorum `serve`'s keyguard
 * reads, so the record follows what that keyguard will read. Safe while `serve` runs: the
 * keyguard's key store re-reads a record whose file changed.
 */
import { createProvider } from '@digicap/contracts'
import { ethersChainClient } from '@digicap/keyguard'
import {
  ethersPolicyUpdater,
  type MoveCapsulePolicyResult,
  moveCapsulePolicy,
} from '../registry/move-policy.ts'
import { type OwnerNodeParts, ownerTransactions, withOwnerAccount } from './components.ts'

export interface MovePolicyOptions {
  /** 0x-prefixed 32-byte capsule id. */
  capsuleId: string
  /** The new policy contract's address. */
  policy: string
  /** How long to wait for the chain to read the new policy, ms. Default 120 000. */
  confirmTimeoutMs?: number
}

export async function movePolicyOfOwnerNode(
  parts: OwnerNodeParts,
  options: MovePolicyOptions,
): Promise<MoveCapsulePolicyResult> {
  const { config, paths, sealer, keyStore, owner } = parts
  const providers = [config.rpcUrl, ...(config.rpcUrls ?? [])].map((url) =>
    createProvider(url, config.chainId),
  )
  try {
    const chain = ethersChainClient({
      providers,
      ...(config.quorum !== undefined ? { quorum: config.quorum } : {}),
      addresses: config.contracts,
      chainId: BigInt(config.chainId),
    })
    return await withOwnerAccount(paths, sealer, config, ({ wallet }) =>
      moveCapsulePolicy(
        {
          capsuleId: options.capsuleId,
          policy: options.policy,
          ...(options.confirmTimeoutMs === undefined
            ? {}
            : { confirmTimeoutMs: options.confirmTimeoutMs }),
        },
        {
          updater: ethersPolicyUpdater(wallet, {
            contracts: config.contracts,
            serialize: (fn) => ownerTransactions(paths, fn),
          }),
          keyStore,
          chain,
          // Records stored before they named their owner are this owner's (keyguard ADR 0071).
          owners: [owner.address],
        },
      ),
    )
  } finally {
    for (const p of providers) p.destroy()
  }
}
