/** A {@link DigicapSigner} over a secp256k1 private key held in memory (noble, no ethers). */
import { bytesArg } from '../encoding/bytes.ts'
import { type Hex, toHex } from '../encoding/hex.ts'
import { addressFromPrivateKey, signDigest } from './signature.ts'
import type { DigicapSigner } from './signer.ts'
import { hashTypedData } from './typed-data.ts'

/**
 * A signer for a raw secp256k1 private key. The key is copied, so zeroing the caller's
 * array does not disable the signer. Signatures are deterministic (RFC 6979) and low-s: the
 * same bytes as ethers' `Wallet.signTypedData` and viem's `privateKeyToAccount`.
 *
 * @throws {InvalidArgumentError} if the key is not a valid 32-byte secp256k1 key.
 * @example
 * ```ts
 * const owner = privateKeySigner('0x…64 hex digits…')
 * owner.address // '0x…' (EIP-55)
 * ```
 */
export function privateKeySigner(privateKey: Uint8Array | Hex): DigicapSigner {
  const key = Uint8Array.from(bytesArg('privateKey', privateKey, 32))
  const address = addressFromPrivateKey(key)
  return {
    address,
    signTypedData: async (typedData) => toHex(signDigest(hashTypedData(typedData), key)),
  }
}
