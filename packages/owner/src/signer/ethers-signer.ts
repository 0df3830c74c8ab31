import type { Address, TypedData } from '@digicap/capsule-core'
import type { Signer } from 'ethers'
import type { OwnerSigner } from './types.ts'

/**
 * Adapts an ethers `Signer` (a `Wallet`, a JSON-RPC account, a hardware-wallet signer) to
 * {@link OwnerSigner}. Ethers stays an adapter: no ethers type is in the pipeline's API.
 *
 * @example
 * ```ts
 * const signer = await ethersOwnerSigner(new Wallet(key, provider))
 * ```
 */
export async function ethersOwnerSigner(signer: Signer): Promise<OwnerSigner> {
  const address = (await signer.getAddress()) as Address
  return {
    address,
    async signTypedData(data: TypedData) {
      const types = data.types as Record<string, { name: string; type: string }[]>
      return (await signer.signTypedData(
        data.domain as Record<string, unknown>,
        types,
        data.message,
      )) as `0x${string}`
    },
  }
}
