/**
 * Signers. Every SDK call takes capsule-core's `DigicapSigner` (`address` + `signTypedData`,
 * and `signTransaction` for the calls that send transactions): a hardware wallet, viem's
 * account, a TPM-held key or a remote signer fit as they are. `localSigner` is the one for a
 * key held in this process.
 */
import type { DigicapSigner, Hex } from '@digicap/capsule-core'
import { privateKeyAccount } from '@digicap/contracts'
import { SignerUnsupportedError } from '../errors.ts'

export type { DigicapSigner }

/**
 * A `DigicapSigner` over a secp256k1 key held in this process: it signs typed data and
 * transactions, so every call takes it (`sealAndPublish`, `runCapsule`, `registerExecutor`).
 * The key is copied; nothing can read it back from the signer.
 *
 * @throws {InvalidArgumentError} for a key that is not a valid 32-byte secp256k1 key.
 * @example
 * ```ts
 * const owner = localSigner(process.env.OWNER_KEY as `0x${string}`)
 * owner.address // '0x…' (EIP-55)
 * ```
 */
export function localSigner(privateKey: Uint8Array | Hex): DigicapSigner {
  return Object.freeze(privateKeyAccount(privateKey))
}

/**
 * Checks, before anything starts, that `signer` can sign the transactions a call sends.
 * @throws {SignerUnsupportedError} naming what needs them.
 */
export function requireTransactionSigner(signer: DigicapSigner, what: string): void {
  if (typeof signer?.signTransaction === 'function') return
  throw new SignerUnsupportedError(`${what} sends transactions; this signer cannot sign them`, {
    details: { address: signer?.address },
    hint: 'Give the signer signTransaction(unsignedSerialized) (a hardware wallet, a viem account), or pass localSigner(key).',
  })
}
