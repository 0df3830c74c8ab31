/**
 * What signs for the owner's Ethereum account. A plain interface, so the owner can bring a
 * hardware wallet, viem's account, a TPM-held key or an ethers wallet (adapters below);
 * no private key crosses this package's public API.
 */
import type { Address, Hex, TypedData } from '@digicap/capsule-core'

export interface OwnerSigner {
  /** The owner's checksummed address (the capsule header's `owner`). */
  readonly address: Address
  /** Signs EIP-712 typed data; returns the 65-byte `r || s || v` signature. */
  signTypedData(data: TypedData): Promise<Hex | Uint8Array>
}
