/**
 * The fast path's chain-side helpers over capsule-core's one EIP-712 encoder and grant id
 * (no second copy here): the request struct as the contract's `hashSignedRequest` takes it,
 * its digest, and the grant id. Signing is a wallet's job (`signer.signTypedData(domain,
 * ACCESS_REQUEST_TYPES, request)`, or any `DigicapSigner`); the keyguard's and the executor's
 * byte-level `signAccessRequest` / `recoverAccessRequestSigner` live in `@digicap/protocol`.
 */
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  grantId,
  hashTypedData,
  type TypedDataDomain,
  toHex,
} from '@digicap/capsule-core'
import { type BytesLike, keccak256 } from 'ethers'

export { ACCESS_REQUEST_TYPES, accessRequestDomain }

/**
 * The fast-path request an executor signs (EIP-712, primary type `AccessRequest`, domain name
 * `DigicapAccessController`, version `1`, the chain id and the AccessController address).
 * The digest is `keccak256(0x1901 ‖ domainSeparator ‖ keccak256(abi.encode(TYPEHASH, capsuleId,
 * executor, ephemeralKey, measurement, jobParamsHash, fee, nonce, expiry)))` with
 * `TYPEHASH = keccak256("AccessRequest(bytes32 capsuleId,address executor,bytes32 ephemeralKey,bytes32 measurement,bytes32 jobParamsHash,uint256 fee,uint256 nonce,uint64 expiry)")`.
 */
export interface SignedAccessRequest {
  capsuleId: string
  executor: string
  /** X25519 public key, bytes32 hex. */
  ephemeralKey: string
  measurement: string
  /** keccak256 of the job parameters bytes (see {@link jobParamsHash}). */
  jobParamsHash: string
  /** Wei taken from the executor's deposit into escrow. */
  fee: bigint
  /** Any unused number; each nonce is accepted once per executor. */
  nonce: bigint
  /** Unix seconds after which the request cannot be recorded. */
  expiry: bigint
}

/** keccak256 of job parameters, as bound into a signed request. */
export function jobParamsHash(jobParams: BytesLike): string {
  return keccak256(jobParams)
}

/**
 * The EIP-712 digest the executor signs (equals `AccessController.hashSignedRequest`).
 *
 * @throws {InvalidArgumentError} for a field that does not fit its type.
 */
export function hashAccessRequest(domain: TypedDataDomain, request: SignedAccessRequest): string {
  return toHex(
    hashTypedData({
      domain,
      types: ACCESS_REQUEST_TYPES,
      primaryType: 'AccessRequest',
      message: { ...request },
    }),
  )
}

/**
 * The id of the grant made for `runIndex` (the capsule's run count before the grant):
 * `keccak256(abi.encode(chainId, accessController, capsuleId, executor, ephemeralKey, measurement, runIndex))`.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or range.
 */
export function computeGrantId(params: {
  chainId: bigint | number
  accessController: string
  capsuleId: string
  executor: string
  ephemeralKey: string
  measurement: string
  runIndex: bigint | number
}): string {
  return toHex(grantId(params))
}
