/** `pi-node status`. */

import { rpcChainId } from '@digicap/cli-kit'
import type { KeyguardStatus, SealerDescription } from '@digicap/keyguard'
import { type OperatorStatus, operatorWarning } from '../operator/operator-status.ts'
import { keyguardCard } from '../wrapping/keyguard-card.ts'
import type { KeyguardCard } from '../wrapping/types.ts'
import type { OwnerNodeConfig } from './config.ts'
import { errorInfo, type OwnerNodeParts, readServeFile } from './parts.ts'
import { balanceOf, headBlock, readOperatorStatus } from './status-chain.ts'

export interface OwnerNodeStatus {
  dataDir: string
  rpcUrl: string
  chainId: number
  contracts: OwnerNodeConfig['contracts']
  sealer: SealerDescription | { error: { code: string; message: string } }
  owner: { address: string; peerId: string; recoveryKeyId: string; createdAt: string }
  /** What a laptop needs to seal for this keyguard (`@digicap/owner`): public facts only. */
  card?: KeyguardCard
  chain:
    | { reachable: true; head: number; ownerBalanceWei: string }
    | { reachable: false; error: { code: string; message: string } }
  /** The keyguard operator account: address, approval by the owner, balance, warning. */
  operator: OperatorStatus
  capsules: number
  daemon: {
    running: boolean
    pid?: number
    peerId?: string
    multiaddrs?: string[]
    /** The daemon keyguard's `status()`, as last written to `serve.json`. */
    keyguard?: KeyguardStatus
    /** When the daemon last refreshed `serve.json`. */
    updatedAt?: string
  }
  listen: string[]
  announce: string[]
  bootstrap: string[]
}

async function chainStatus(
  parts: OwnerNodeParts,
): Promise<Pick<OwnerNodeStatus, 'chain' | 'operator'>> {
  const { config, owner } = parts
  const o = owner
  let operator: OperatorStatus =
    o.operatorAddress === undefined
      ? { warning: operatorWarning({}) as string }
      : { address: o.operatorAddress }
  const { rpcUrl } = config
  const address = o.operatorAddress
  // All reads at once (one round trip of wall time); the chain id is checked before any
  // answer is used, so a wrong chain's head or balances are never shown.
  const [chainId, head, balance, operatorRead] = await Promise.allSettled([
    rpcChainId(rpcUrl, config.chainId),
    headBlock(rpcUrl),
    balanceOf(rpcUrl, o.address),
    address === undefined
      ? Promise.resolve(undefined)
      : readOperatorStatus(rpcUrl, config.contracts.capsuleRegistry, o.address, address),
  ])
  const failed = [chainId, head, balance].find((r) => r.status === 'rejected')
  if (failed) return { chain: { reachable: false, error: errorInfo(failed.reason) }, operator }
  if (address !== undefined) {
    operator =
      operatorRead.status === 'fulfilled'
        ? (operatorRead.value as OperatorStatus)
        : {
            address,
            warning: `Cannot read the keyguard operator (error[${errorInfo(operatorRead.reason).code}])`,
          }
  }
  const { value: headNumber } = head as PromiseFulfilledResult<number>
  const { value: wei } = balance as PromiseFulfilledResult<bigint>
  return { chain: { reachable: true, head: headNumber, ownerBalanceWei: wei.toString() }, operator }
}

/** `status`: the node, its keyguard card, the chain, the operator and the daemon. Never throws for the chain. */
export async function statusOfOwnerNode(parts: OwnerNodeParts): Promise<OwnerNodeStatus> {
  const { config, paths, sealer, keyStore, owner, ownerPeerId } = parts
  // Independent reads, side by side: the sealer (a TPM answers slowly), files and the chain.
  const [sealerInfo, card, serve, chain, stored] = await Promise.all([
    sealer.describe().catch((err) => ({ error: errorInfo(err) })),
    keyguardCard({
      peerId: ownerPeerId,
      wrapper: sealer,
      recoveryPublicKey: owner.recoveryPublicKey,
    }).catch(() => undefined),
    readServeFile(paths.serve),
    chainStatus(parts),
    keyStore.list(),
  ])
  return {
    dataDir: config.dataDir,
    rpcUrl: config.rpcUrl,
    chainId: config.chainId,
    contracts: config.contracts,
    sealer: sealerInfo,
    owner: {
      address: owner.address,
      peerId: ownerPeerId,
      recoveryKeyId: owner.recoveryKeyId,
      createdAt: owner.createdAt,
    },
    ...(card ? { card } : {}),
    ...chain,
    capsules: stored.length,
    daemon: serve
      ? {
          running: true,
          pid: serve.pid,
          peerId: serve.peerId,
          multiaddrs: serve.multiaddrs,
          ...(serve.keyguard ? { keyguard: serve.keyguard } : {}),
          ...(serve.updatedAt ? { updatedAt: serve.updatedAt } : {}),
        }
      : { running: false },
    listen: config.listen,
    announce: config.announce ?? [],
    bootstrap: config.bootstrap,
  }
}
