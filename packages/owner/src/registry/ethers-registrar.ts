import { connectDigicap, withRevertDecoding } from '@digicap/contracts'
import type { Signer } from 'ethers'
import type { TransactionSerializer } from '../policy/types.ts'
import type { CapsuleRegistrar, ChainContracts } from './types.ts'

/**
 * A {@link CapsuleRegistrar} that sends `CapsuleRegistry.register` from an ethers signer
 * (the owner's account: the registry records `msg.sender` as the owner).
 *
 * @example
 * ```ts
 * const registrar = ethersCapsuleRegistrar(ownerWallet, { contracts })
 * ```
 */
export function ethersCapsuleRegistrar(
  signer: Signer,
  init: { contracts: ChainContracts; serialize?: TransactionSerializer },
): CapsuleRegistrar {
  const serialize = init.serialize ?? ((fn) => fn())
  const { capsuleRegistry } = connectDigicap(init.contracts, signer)
  return {
    register(entry) {
      return serialize(async () => {
        const sent = await withRevertDecoding(
          capsuleRegistry.register(
            entry.capsuleId,
            entry.policy,
            entry.cid,
            entry.plaintextCommitment,
            new TextEncoder().encode(entry.keyguardPeerId),
            `0x${entry.keyguardKeyId}`,
          ),
        )
        await withRevertDecoding(sent.wait())
        return { transactionHash: sent.hash }
      })
    },
    ownerOf: (capsuleId) => capsuleRegistry.ownerOf(capsuleId),
  }
}
