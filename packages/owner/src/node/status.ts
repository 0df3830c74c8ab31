/** `pi-node status`. */

import { rpcChainId } from '@digicap/cli-kit'
import type { KeyguardStatus, SealerDescription } from '@digicap/keyguard'
import { type OperatorStatus, operatorWarning } from '../operator/operator-status.ts'
import { keyguardCard } from '../wrapping/card.ts'
import type { KeyguardCard } from '../wrapping/types.ts'
import { errorInfo, type OwnerNodeParts, readServeFile } from './components.ts'
import type { OwnerNodeConfig } from './config.ts'
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
  try {
    await rpcChainId(rpcUrl, config.chainId)
    const [head, balance] = await Promise.all([headBlock(rpcUrl), balanceOf(rpcUrl, o.address)])
    const address = o.operatorAddress
    if (address !== undefined) {
      const registry = config.contracts.capsuleRegistry
      operator = await readOperatorStatus(rpcUrl, registry, o.address, address).catch((err) => ({
        address,
        warning: `Cannot read the keyguard operator (error[${errorInfo(err).code}])`,
      }))
    }
    return { chain: { reachable: true, head, ownerBalanceWei: balance.toString() }, operator }
  } catch (err) {
    return { chain: { reachable: false, error: errorInfo(err) }, operator }
  }
}

/** `status`: the node, its keyguard card, the chain, the operator and the daemon. Never throws for the chain. */
export async function statusOfOwnerNode(parts: OwnerNodeParts): Promise<OwnerNodeStatus> {
  const { config, paths, sealer, keyStore, owner, ownerPeerId } = parts
  const sealerInfo = await sealer.describe().catch((err) => ({ error: errorInfo(err) }))
  const card = await keyguardCard({
    peerId: ownerPeerId,
    wrapper: sealer,
    recoveryPublicKey: owner.recoveryPublicKey,
  }).catch(() => undefined)
  const serve = await readServeFile(paths.serve)
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
    ...(await chainStatus(parts)),
    capsules: (await keyStore.list()).length,
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
