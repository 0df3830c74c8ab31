/**
 * Signs a serialized unsigned transaction with a key: ethers' encodings, in a file of its own so
 * that `privateKeyAccount` imports it (and ethers) on the first transaction only.
 */

import type { Hex } from '@digicap/capsule-core'
import { SigningKey, Transaction } from 'ethers'

/** A signer of transactions for `key` (0x hex); the key is kept in ethers' `SigningKey`. */
export function transactionSigner(key: string): (unsignedSerialized: string) => Hex {
  const signingKey = new SigningKey(key)
  return (unsignedSerialized) => {
    const tx = Transaction.from(unsignedSerialized)
    tx.signature = signingKey.sign(tx.unsignedHash)
    return tx.serialized as Hex
  }
}
