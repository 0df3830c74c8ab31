/**
 * What Digicap needs from an Ethereum account: its address and an EIP-712 signature. A plain
 * interface, so a wallet, a hardware signer, viem's `LocalAccount`, a TPM-held key or an
 * ethers adapter fit alike; no library type appears in it.
 */
import { type Address, normalizeAddress } from '../encoding/address.ts'
import type { Hex } from '../encoding/hex.ts'
import { CapsuleSignatureError } from '../errors.ts'
import { recoverTypedDataSigner } from './signature.ts'
import type { TypedData } from './typed-data.ts'

/**
 * An account that signs EIP-712 typed data. viem's `LocalAccount` has this shape already.
 *
 * @example
 * ```ts
 * const signer: DigicapSigner = privateKeySigner(process.env.OWNER_KEY as Hex)
 * const signature = await signTypedDataWith(signer, capsuleTypedData(header))
 * ```
 */
export interface DigicapSigner {
  /** The account's Ethereum address. */
  readonly address: Address
  /**
   * Signs `typedData` (EIP-712 v4); resolves to the 65-byte signature `r || s || v` as hex.
   * `typedData.types` never carries `EIP712Domain`: derive it from `typedData.domain`.
   */
  signTypedData(typedData: TypedData): Promise<Hex>
  /**
   * Optional: signs a transaction, given its unsigned serialization (EIP-2718 typed envelope or
   * legacy RLP, what a hardware wallet's Ethereum app signs); resolves to the signed
   * serialization. A signer with it can send transactions (seal and publish a capsule);
   * viem's `account.signTransaction(parseTransaction(unsigned))` fits as it is.
   */
  signTransaction?(unsignedSerialized: Hex): Promise<Hex>
}

/**
 * Signs with any {@link DigicapSigner} and checks the answer: the signature is 65 bytes,
 * low-s, and recovers to `signer.address`. A signer that answers v = 0/1 (some hardware
 * wallets) is normalised to 27/28.
 *
 * `recover` answers who signed (default: `recoverTypedDataSigner`); a caller that has the digest
 * and a cheaper recovery with the same answer passes it.
 *
 * @throws {CapsuleSignatureError} if the signer returned a malformed signature or signed as
 * another account.
 * @example
 * ```ts
 * const sig = await signTypedDataWith(signer, capsuleTypedData(header)) // 65 bytes
 * ```
 */
export async function signTypedDataWith(
  signer: DigicapSigner,
  typedData: TypedData,
  recover: (signature: Uint8Array) => Address = (sig) => recoverTypedDataSigner(typedData, sig),
): Promise<Uint8Array> {
  const expected = normalizeAddress(signer.address, 'signer.address')
  const answer: unknown = await signer.signTypedData(typedData)
  if (typeof answer !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(answer)) {
    throw new CapsuleSignatureError('signer returned no 65-byte hex signature', {
      details: { got: typeof answer === 'string' ? `${answer.length} chars` : typeof answer },
      hint: 'The signer must resolve to 0x + 130 hex digits (r || s || v).',
    })
  }
  const sig = new Uint8Array(Buffer.from(answer.slice(2), 'hex'))
  if ((sig[64] as number) < 2) sig[64] = (sig[64] as number) + 27
  const recovered = recover(sig)
  if (recovered !== expected) {
    throw new CapsuleSignatureError('signer signed as another account', {
      details: { address: expected, recovered },
      hint: 'Check that the signer is the account the capsule or request names.',
    })
  }
  return sig
}
