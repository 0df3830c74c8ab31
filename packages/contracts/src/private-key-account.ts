/**
 * A {@link DigicapSigner} over a key held in this process that also signs transactions: the
 * account an executor node or a laptop derives from its mnemonic. Typed data is signed by
 * capsule-core's noble signer, transactions by ethers' `SigningKey` (the one place here that
 * knows the transaction encodings), so the same signer goes through `digicapEthersSigner` like
 * a hardware wallet does.
 */
import { type DigicapSigner, type Hex, privateKeySigner } from '@digicap/capsule-core'
import { SigningKey, Transaction } from 'ethers'

/**
 * @throws {InvalidArgumentError} (capsule-core's) if the key is not a valid 32-byte secp256k1 key.
 * @example
 * ```ts
 * const account = privateKeyAccount(key) // address, signTypedData, signTransaction
 * const registry = connectDigicap(addresses, digicapEthersSigner(account, provider))
 * ```
 */
export function privateKeyAccount(privateKey: Uint8Array | Hex): DigicapSigner {
  const typed = privateKeySigner(privateKey)
  // privateKeySigner checked the key; SigningKey keeps its own copy (zeroing the caller's is fine).
  const signingKey = new SigningKey(privateKey)
  return {
    address: typed.address,
    signTypedData: typed.signTypedData,
    async signTransaction(unsignedSerialized) {
      const tx = Transaction.from(unsignedSerialized)
      tx.signature = signingKey.sign(tx.unsignedHash)
      return tx.serialized as Hex
    },
  }
}
