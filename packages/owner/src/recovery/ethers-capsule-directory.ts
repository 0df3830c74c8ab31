import { connectDigicap, parseEvents } from '@digicap/contracts'
import type { CapsuleDirectory, OwnedCapsule } from '@digicap/keyguard'
import { getBytes, hexlify, type Provider, toUtf8String, zeroPadValue } from 'ethers'
import type { ChainContracts } from '../registry/types.ts'

/** Blocks scanned per `eth_getLogs` call (public RPCs cap the range). */
const LOG_BATCH_BLOCKS = 10_000

/**
 * The owner's capsules from the chain (a keyguard `CapsuleDirectory`): `CapsuleRegistered`
 * logs filtered by the indexed owner from `fromBlock`, each read again with `getCapsule` for
 * its current CID, keyguard and revocation.
 *
 * @example
 * ```ts
 * const directory = ethersCapsuleDirectory(provider, contracts, { fromBlock: config.startBlock })
 * ```
 */
export function ethersCapsuleDirectory(
  provider: Provider,
  contracts: ChainContracts,
  options: { fromBlock: number },
): CapsuleDirectory {
  const { capsuleRegistry } = connectDigicap(contracts, provider)
  const topic = capsuleRegistry.interface.getEvent('CapsuleRegistered')?.topicHash as string
  async function registeredIds(owner: string): Promise<string[]> {
    const head = await provider.getBlockNumber()
    const ids: string[] = []
    for (let from = options.fromBlock; from <= head; from += LOG_BATCH_BLOCKS) {
      const logs = await provider.getLogs({
        address: contracts.capsuleRegistry,
        topics: [topic, null, zeroPadValue(owner, 32)],
        fromBlock: from,
        toBlock: Math.min(head, from + LOG_BATCH_BLOCKS - 1),
      })
      for (const e of parseEvents(capsuleRegistry, logs, 'CapsuleRegistered')) {
        const id = String(e.capsuleId).toLowerCase()
        if (!ids.includes(id)) ids.push(id)
      }
    }
    return ids
  }
  return {
    async ownedCapsules(owner) {
      const out: OwnedCapsule[] = []
      for (const capsuleId of await registeredIds(owner)) {
        const c = await capsuleRegistry.getCapsule(capsuleId)
        // Ids are unique; a transfer could still move a capsule to another owner.
        if (String(c.owner).toLowerCase() !== owner.toLowerCase()) continue
        let peerId: string
        try {
          peerId = toUtf8String(getBytes(c.keyguardPeerId))
        } catch {
          peerId = hexlify(c.keyguardPeerId)
        }
        out.push({
          capsuleId,
          cid: c.cid,
          policy: c.policy,
          revoked: c.revoked,
          keyguardKeyId: String(c.keyguardKeyId).replace(/^0x/, '').toLowerCase(),
          keyguardPeerId: peerId,
        })
      }
      return out
    },
  }
}
