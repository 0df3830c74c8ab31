import { hexToBytes } from '@digicap/capsule-core'
import { type KeyTransactor, registerCapsuleCallData } from '@digicap/contracts/light'
import type { TransactionSerializer } from '../policy/types.ts'
import type { CapsuleRegistrar, ChainContracts } from './types.ts'

/**
 * A {@link CapsuleRegistrar} that sends `CapsuleRegistry.register` from a
 * {@link KeyTransactor} (the owner's key over plain JSON-RPC; the registry records
 * `msg.sender` as the owner): what `pi-node seal` registers with, loading no ethers. A revert
 * is the same decoded `ContractRevertError` as {@link ethersCapsuleRegistrar}'s.
 *
 * @example
 * ```ts
 * const registrar = transactorCapsuleRegistrar(privateKeyTransactor({ rpcUrl, chainId, privateKey }), { contracts })
 * ```
 */
export function transactorCapsuleRegistrar(
  transactor: KeyTransactor,
  init: { contracts: ChainContracts; serialize?: TransactionSerializer },
): CapsuleRegistrar {
  const serialize = init.serialize ?? ((fn) => fn())
  return {
    register(entry) {
      return serialize(async () => {
        const mined = await transactor.send({
          to: init.contracts.capsuleRegistry,
          data: registerCapsuleCallData({
            capsuleId: hexToBytes(entry.capsuleId, { length: 32, name: 'capsuleId' }),
            policy: entry.policy,
            cid: entry.cid,
            plaintextCommitment: entry.plaintextCommitment,
            keyguardPeerId: new TextEncoder().encode(entry.keyguardPeerId),
            keyguardKeyId: hexToBytes(`0x${entry.keyguardKeyId}`, {
              length: 32,
              name: 'keyguardKeyId',
            }),
          }),
        })
        return { transactionHash: mined.hash }
      })
    },
  }
}
