/**
 * The adapter from an ethers v6 `Signer` (a `Wallet`, a `JsonRpcSigner`, a hardware-wallet
 * signer) to capsule-core's {@link DigicapSigner}: the one place ethers meets the signer
 * interface, so no other public API needs an ethers type.
 */
import {
  type DigicapSigner,
  type Hex,
  InvalidArgumentError,
  normalizeAddress,
  type TypedData,
  type TypedDataField,
} from '@digicap/capsule-core'
import type { Signer } from 'ethers'

/**
 * A {@link DigicapSigner} that signs through `signer.signTypedData`. Asks the signer for its
 * address once.
 *
 * @throws {InvalidArgumentError} if `signer` does not look like an ethers Signer or reports
 * no valid address.
 * @example
 * ```ts
 * const owner = await ethersSigner(new Wallet(key, provider))
 * const sig = await signTypedDataWith(owner, capsuleTypedData(header))
 * ```
 */
export async function ethersSigner(signer: Signer): Promise<DigicapSigner> {
  if (typeof signer?.getAddress !== 'function' || typeof signer?.signTypedData !== 'function') {
    throw new InvalidArgumentError('signer must be an ethers v6 Signer', {
      hint: 'Pass a Wallet, or provider.getSigner(); for other wallets implement DigicapSigner.',
    })
  }
  const address = normalizeAddress(await signer.getAddress(), 'signer address')
  return {
    address,
    signTypedData: async (typedData: TypedData) => {
      // ethers derives EIP712Domain from the domain and refuses it among the types.
      const types: Record<string, TypedDataField[]> = {}
      for (const [name, fields] of Object.entries(typedData.types)) {
        if (name !== 'EIP712Domain') types[name] = fields
      }
      return (await signer.signTypedData(typedData.domain, types, typedData.message)) as Hex
    },
  }
}
