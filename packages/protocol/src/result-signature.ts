/**
 * The executor's signature on a result (SPEC.md §3.4.2): EIP-712 typed data `Result` in the
 * domain `{ name: "DigicapResult", version: "1", chainId, verifyingContract: AccessController }`,
 * hashed with capsule-core's one EIP-712 encoder and signed / recovered with its secp256k1
 * helpers (low s, v ∈ {27, 28}).
 */
import {
  type Address,
  CapsuleSignatureError,
  checksumAddress,
  type DigicapSigner,
  hashTypedData,
  InvalidArgumentError,
  normalizeAddress,
  recoverDigestSigner,
  signDigest,
  signTypedDataWith,
  type TypedData,
  toHex,
} from '@digicap/capsule-core'
import { checkBytes } from './bytes.ts'
import type { AccessDomain } from './eip712.ts'
import { WireSignatureError } from './errors.ts'
import { ADDRESS_LENGTH, ID_LENGTH } from './messages.ts'
import { MAX_RESULT_SIZE, type ResultDelivery, type SignedResultFields } from './result.ts'

/** `EIP712Domain.name` of result signatures. */
export const RESULT_DOMAIN_NAME = 'DigicapResult'
/** `EIP712Domain.version` of result signatures. */
export const RESULT_DOMAIN_VERSION = '1'

/** The EIP-712 `Result` struct (every signed field of a delivery, in this order). */
export const RESULT_TYPES = {
  Result: [
    { name: 'runId', type: 'bytes32' },
    { name: 'grantId', type: 'bytes32' },
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'executor', type: 'address' },
    { name: 'receiverKey', type: 'bytes32' },
    { name: 'measurement', type: 'bytes32' },
    { name: 'runMeasurement', type: 'bytes32' },
    { name: 'resultHash', type: 'bytes32' },
    { name: 'resultSize', type: 'uint64' },
  ],
} as const

/** The domain of result signatures: the chain and AccessController that hold the grant. */
export type ResultDomain = AccessDomain

/**
 * The EIP-712 typed data of a result, for a wallet (`signTypedData(domain, types, message)`).
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function resultTypedData(fields: SignedResultFields, domain: ResultDomain): TypedData {
  for (const name of [
    'runId',
    'grantId',
    'capsuleId',
    'receiverKey',
    'measurement',
    'runMeasurement',
    'resultHash',
  ] as const) {
    checkBytes(name, fields[name], ID_LENGTH)
  }
  checkBytes('executor', fields.executor, ADDRESS_LENGTH)
  if (
    !Number.isSafeInteger(fields.resultSize) ||
    fields.resultSize < 0 ||
    fields.resultSize > MAX_RESULT_SIZE
  ) {
    throw new InvalidArgumentError('resultSize must be an integer in [0, 2^40]', {
      details: { field: 'resultSize' },
    })
  }
  return {
    domain: {
      name: RESULT_DOMAIN_NAME,
      version: RESULT_DOMAIN_VERSION,
      chainId: BigInt(domain.chainId),
      verifyingContract: normalizeAddress(domain.verifyingContract, 'verifyingContract'),
    },
    types: { Result: RESULT_TYPES.Result.map((f) => ({ ...f })) },
    primaryType: 'Result',
    message: {
      runId: toHex(fields.runId),
      grantId: toHex(fields.grantId),
      capsuleId: toHex(fields.capsuleId),
      executor: checksumAddress(fields.executor),
      receiverKey: toHex(fields.receiverKey),
      measurement: toHex(fields.measurement),
      runMeasurement: toHex(fields.runMeasurement),
      resultHash: toHex(fields.resultHash),
      resultSize: BigInt(fields.resultSize),
    },
  }
}

/**
 * The 32-byte EIP-712 digest the executor signs for a result.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function resultDigest(fields: SignedResultFields, domain: ResultDomain): Uint8Array {
  return hashTypedData(resultTypedData(fields, domain))
}

/**
 * Signs a result with the executor's secp256k1 key; returns `r || s || v` (65 bytes, low s).
 *
 * @throws {InvalidArgumentError} for a bad key, field or domain, or a key that is not
 * `fields.executor`'s.
 * @example
 * ```ts
 * const signature = signResult(fields, { chainId, verifyingContract: accessController }, key)
 * ```
 */
export function signResult(
  fields: SignedResultFields,
  domain: ResultDomain,
  privateKey: Uint8Array,
): Uint8Array {
  const digest = resultDigest(fields, domain)
  const signature = signDigest(digest, privateKey)
  if (recoverDigestSigner(digest, signature) !== checksumAddress(fields.executor)) {
    throw new InvalidArgumentError('privateKey does not belong to fields.executor', {
      details: { field: 'executor' },
    })
  }
  return signature
}

/**
 * Signs a result with any {@link DigicapSigner} (the executor's key in memory, a hardware or
 * remote signer); the same bytes as {@link signResult} for a key in memory.
 *
 * @throws {InvalidArgumentError} for a bad field, domain or signer address.
 * @throws {CapsuleSignatureError} (capsule-core's) if the signer is not `fields.executor`,
 * answers a malformed signature or signs as another account.
 * @example
 * ```ts
 * const signature = await signResultWith(signer, fields, { chainId, verifyingContract })
 * ```
 */
export async function signResultWith(
  signer: DigicapSigner,
  fields: SignedResultFields,
  domain: ResultDomain,
): Promise<Uint8Array> {
  const typedData = resultTypedData(fields, domain)
  if (normalizeAddress(signer?.address, 'signer.address') !== typedData.message.executor) {
    throw new CapsuleSignatureError('The signer is not the result’s executor', {
      details: { executor: String(typedData.message.executor), signer: signer.address },
      hint: 'Sign with the account the result names as executor.',
    })
  }
  return signTypedDataWith(signer, typedData)
}

/**
 * Recovers the address that signed a result delivery. The receiver compares it with
 * `delivery.executor` and with the grant's executor on chain.
 *
 * @throws {WireSignatureError} for a malformed, high-s, bad-v or unrecoverable signature.
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function recoverResultSigner(delivery: ResultDelivery, domain: ResultDomain): Address {
  const digest = resultDigest(delivery, domain)
  try {
    return recoverDigestSigner(digest, delivery.signature)
  } catch (cause) {
    if (cause instanceof CapsuleSignatureError) {
      throw new WireSignatureError('The result signature is malformed', {
        details: { field: 'signature' },
        cause,
      })
    }
    throw cause
  }
}
