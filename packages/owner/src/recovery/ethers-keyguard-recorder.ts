import { connectDigicap, withRevertDecoding } from '@digicap/contracts'
import type { KeyguardRecorder } from '@digicap/keyguard'
import type { Signer } from 'ethers'
import type { TransactionSerializer } from '../policy/types.ts'
import type { ChainContracts } from '../registry/types.ts'

/**
 * `CapsuleRegistry.updateKeyguard` from the owner's account (a keyguard `KeyguardRecorder`):
 * points a capsule's chain record at a new keyguard key after recovery.
 *
 * @example
 * ```ts
 * const recorder = ethersKeyguardRecorder(ownerWallet, { contracts, serialize: lock })
 * ```
 */
export function ethersKeyguardRecorder(
  signer: Signer,
  init: { contracts: ChainContracts; serialize?: TransactionSerializer },
): KeyguardRecorder {
  const serialize = init.serialize ?? ((fn) => fn())
  const { capsuleRegistry } = connectDigicap(init.contracts, signer)
  return {
    async updateKeyguard(capsuleId, peerId, keyId) {
      await serialize(async () => {
        const tx = await withRevertDecoding(
          capsuleRegistry.updateKeyguard(capsuleId, new TextEncoder().encode(peerId), `0x${keyId}`),
        )
        await withRevertDecoding(tx.wait())
      })
    },
  }
}
