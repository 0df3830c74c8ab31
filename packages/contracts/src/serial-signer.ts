/**
 * One account, one transaction at a time: an ethers `Signer` that sends through another one,
 * each send waiting until the previous one reached the node. The inner signer reads the
 * account's pending nonce when it fills a transaction, so concurrent callers (a verifier in
 * two jobs at once) never pick the same nonce, and a send that fails before broadcast (a
 * revert in gas estimation) leaves no gap — unlike ethers' `NonceManager`, which counts the
 * nonce before the inner send and must then be `reset()`.
 */
import {
  AbstractSigner,
  type Provider,
  type Signer,
  type TransactionRequest,
  type TransactionResponse,
  type TypedDataDomain,
  type TypedDataField,
} from 'ethers'

/**
 * Serialises `signer`'s sends (one queue per returned signer: wrap each account once and
 * share the result). Reads, calls and signatures pass straight through. The provider must not
 * cache `eth_getTransactionCount` (use {@link createProvider}).
 *
 * @example
 * ```ts
 * const runner = serialSigner(new Wallet(key, createProvider(url, chainId)))
 * await Promise.all([hub.openJob(a), hub.openJob(b)]) // two nonces, in order
 * ```
 */
export function serialSigner(signer: Signer): AbstractSigner {
  return new SerialSigner(signer)
}

class SerialSigner extends AbstractSigner {
  readonly #signer: Signer
  /** Settles once the last queued send reached the node (or failed). */
  #last: Promise<unknown> = Promise.resolve()
  constructor(signer: Signer) {
    super(signer.provider)
    this.#signer = signer
  }
  override getAddress(): Promise<string> {
    return this.#signer.getAddress()
  }
  override connect(provider: Provider | null): SerialSigner {
    return new SerialSigner(this.#signer.connect(provider))
  }
  override sendTransaction(tx: TransactionRequest): Promise<TransactionResponse> {
    const sent = this.#last.then(() => this.#signer.sendTransaction(tx))
    this.#last = sent.catch(() => undefined)
    return sent
  }
  override signTransaction(tx: TransactionRequest): Promise<string> {
    return this.#signer.signTransaction(tx)
  }
  override signMessage(message: string | Uint8Array): Promise<string> {
    return this.#signer.signMessage(message)
  }
  override signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    value: Record<string, unknown>,
  ): Promise<string> {
    return this.#signer.signTypedData(domain, types, value)
  }
}
