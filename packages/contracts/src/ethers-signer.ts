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
import {
  AbstractSigner,
  type Provider,
  type Signer,
  Transaction,
  type TransactionLike,
  type TransactionRequest,
  type TypedDataDomain,
  TypedDataEncoder,
} from 'ethers'

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

/**
 * The other direction: an ethers `Signer` over a {@link DigicapSigner} that can sign
 * transactions (`signTransaction`), so contract calls go through a hardware wallet, a viem
 * account or a TPM-held key without the key in this process. ethers fills in nonce, gas and
 * fees from `provider`; the wallet signs the unsigned serialization.
 *
 * @throws {InvalidArgumentError} if `signer` has no `signTransaction`, or (when a transaction is
 *   sent) answers a transaction signed by another account.
 * @example
 * ```ts
 * const owner = { address, signTypedData, signTransaction: (u) => ledger.sign(u) }
 * const registry = CapsuleRegistry.connect(digicapEthersSigner(owner, provider))
 * ```
 */
export function digicapEthersSigner(signer: DigicapSigner, provider: Provider): AbstractSigner {
  if (typeof signer?.signTransaction !== 'function') {
    throw new InvalidArgumentError('The signer cannot sign transactions', {
      details: { address: signer?.address },
      hint: 'Give the DigicapSigner a signTransaction(unsignedSerialized) method.',
    })
  }
  return new DigicapEthersSigner(signer, provider)
}

class DigicapEthersSigner extends AbstractSigner {
  readonly #signer: DigicapSigner
  constructor(signer: DigicapSigner, provider: Provider | null) {
    super(provider)
    this.#signer = signer
  }
  override async getAddress(): Promise<string> {
    return this.#signer.address
  }
  override connect(provider: Provider | null): DigicapEthersSigner {
    return new DigicapEthersSigner(this.#signer, provider)
  }
  override async signTransaction(request: TransactionRequest): Promise<string> {
    const populated = await this.populateTransaction(request)
    const { from: _from, ...fields } = populated
    const unsigned = Transaction.from(fields as TransactionLike<string>)
    const signed = Transaction.from(
      await (this.#signer.signTransaction as NonNullable<DigicapSigner['signTransaction']>)(
        unsigned.unsignedSerialized as Hex,
      ),
    )
    // What was signed must be this transaction, from this account (a wallet that signs
    // something else, or as someone else, is caught here rather than by the chain).
    if (
      signed.unsignedHash !== unsigned.unsignedHash ||
      signed.from?.toLowerCase() !== this.#signer.address.toLowerCase()
    ) {
      throw new InvalidArgumentError(
        'The signer signed another transaction or as another account',
        {
          details: { address: this.#signer.address, from: signed.from },
        },
      )
    }
    return signed.serialized
  }
  override async signMessage(): Promise<string> {
    throw new InvalidArgumentError('A DigicapSigner signs typed data and transactions only')
  }
  override async signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    message: Record<string, unknown>,
  ): Promise<string> {
    return this.#signer.signTypedData({
      domain: domain as TypedData['domain'],
      types: types as TypedData['types'],
      primaryType: TypedDataEncoder.getPrimaryType(types),
      message,
    } as TypedData)
  }
}
