/**
 * A {@link DigicapSigner} over a key held in this process that also signs transactions: the
 * account an executor node or a laptop derives from its mnemonic. Typed data is signed by
 * capsule-core's noble signer, transactions by ethers' `SigningKey` (the one place here that
 * knows the transaction encodings), so the same signer goes through `digicapEthersSigner` like
 * a hardware wallet does. ethers is imported on the first transaction, not with the account:
 * a one-shot fast-path run signs none and never loads it (ADR 0052).
 */
import { type DigicapSigner, type Hex, privateKeySigner, toHex } from '@digicap/capsule-core'

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
  // privateKeySigner checked the key; this copy is the signing key's (zeroing the caller's is fine).
  const key = typeof privateKey === 'string' ? privateKey : toHex(privateKey)
  let sign: Promise<(unsignedSerialized: string) => Hex> | undefined
  return {
    address: typed.address,
    signTypedData: typed.signTypedData,
    async signTransaction(unsignedSerialized) {
      sign ??= import('./sign-transaction.ts').then((m) => m.transactionSigner(key))
      return (await sign)(unsignedSerialized)
    },
  }
}
