/**
 * The executor node's Ethereum account: one `DigicapSigner` for everything it signs. Typed
 * data (access requests, results) goes through `signTypedDataWith`; transactions (chain-path
 * requests, registration) through `digicapEthersSigner`, the one ethers adapter, so a key in
 * this process and a hardware, TPM-held or remote signer take the same path
 * (`transactionSender`, in ethers-parts.ts: ethers loads when a transaction is sent).
 */
import { type DigicapSigner, InvalidArgumentError } from '@digicap/capsule-core'
import { privateKeyAccount } from '@digicap/contracts'
import type { ExecutorChain } from '../chain.ts'
import { ExecutorStateError } from '../errors.ts'

export interface AccountParameters {
  readonly signer?: DigicapSigner | undefined
  readonly accountKey?: Uint8Array | undefined
}

/**
 * The signer of `signer` or `accountKey` (exactly one).
 * @throws {InvalidArgumentError} (capsule-core's) for neither or both, or a bad key.
 */
export function accountSigner(p: AccountParameters): DigicapSigner {
  if ((p.signer === undefined) === (p.accountKey === undefined)) {
    throw new InvalidArgumentError('Pass the executor account as `signer` or `accountKey`', {
      details: { signer: p.signer !== undefined, accountKey: p.accountKey !== undefined },
      hint: 'A DigicapSigner (any wallet), or the 32-byte key of an account held in this process.',
    })
  }
  return p.signer ?? privateKeyAccount(p.accountKey as Uint8Array)
}

/**
 * For a signer that cannot sign transactions: the chain reads as before, and the two calls
 * that send say why they cannot (the fast path needs no transaction).
 */
export function chainWithoutTransactions(chain: ExecutorChain, address: string): ExecutorChain {
  const refuse = (what: string) => () =>
    Promise.reject(
      new ExecutorStateError(`The executor's signer cannot sign transactions (${what})`, {
        details: { address },
        hint: 'Give the signer signTransaction(unsignedSerialized), or run by the fast path only.',
      }),
    )
  return {
    ...chain,
    requestAccess: refuse('requestAccess'),
    registerNode: refuse('register'),
  }
}
