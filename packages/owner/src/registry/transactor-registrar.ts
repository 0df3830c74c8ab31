import { hexToBytes, rpcCall, toHex } from '@digicap/capsule-core'
import {
  functionSelector,
  type KeyTransactor,
  registerCapsuleCallData,
  TransactionError,
} from '@digicap/contracts/light'
import type { TransactionSerializer } from '../policy/types.ts'
import type { CapsuleRegistrar, ChainContracts } from './types.ts'

const OWNER_OF = toHex(functionSelector('ownerOf(bytes32)'))

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
    ...(transactor.rpcUrl === undefined
      ? {}
      : {
          async ownerOf(capsuleId: `0x${string}`) {
            const { result, error } = await rpcCall(transactor.rpcUrl as string, 'eth_call', [
              { to: init.contracts.capsuleRegistry, data: `${OWNER_OF}${capsuleId.slice(2)}` },
              'latest',
            ])
            if (
              error !== undefined ||
              typeof result !== 'string' ||
              !/^0x[0-9a-fA-F]{64}$/.test(result)
            ) {
              throw new TransactionError('ownerOf answered no address', {
                details: { capsuleId, rpcError: error?.message?.slice(0, 200) },
              })
            }
            return `0x${result.slice(26)}`
          },
        }),
  }
}
