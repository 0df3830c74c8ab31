import {
  AbiCoder,
  type BytesLike,
  keccak256,
  type Signer,
  type TypedDataDomain,
  TypedDataEncoder,
  verifyTypedData,
} from 'ethers'

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

export const ACCESS_REQUEST_TYPES = {
  AccessRequest: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'executor', type: 'address' },
    { name: 'ephemeralKey', type: 'bytes32' },
    { name: 'measurement', type: 'bytes32' },
    { name: 'jobParamsHash', type: 'bytes32' },
    { name: 'fee', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'expiry', type: 'uint64' },
  ],
} as const

/** The EIP-712 domain of an AccessController. */
export function accessRequestDomain(
  chainId: bigint | number,
  accessController: string,
): TypedDataDomain {
  return {
    name: 'DigicapAccessController',
    version: '1',
    chainId,
    verifyingContract: accessController,
  }
}

const types = ACCESS_REQUEST_TYPES as unknown as Record<string, { name: string; type: string }[]>

/** keccak256 of job parameters, as bound into a signed request. */
export function jobParamsHash(jobParams: BytesLike): string {
  return keccak256(jobParams)
}

/** The EIP-712 digest the executor signs (equals `AccessController.hashSignedRequest`). */
export function hashAccessRequest(domain: TypedDataDomain, request: SignedAccessRequest): string {
  return TypedDataEncoder.hash(domain, types, request)
}

/** Signs a fast-path request with the executor's account (65-byte r‖s‖v signature). */
export function signAccessRequest(
  signer: Signer,
  domain: TypedDataDomain,
  request: SignedAccessRequest,
): Promise<string> {
  return signer.signTypedData(domain, types, request)
}

/** Recovers the account that signed `request` (the keyguard compares it with `request.executor`). */
export function recoverAccessRequestSigner(
  domain: TypedDataDomain,
  request: SignedAccessRequest,
  signature: string,
): string {
  return verifyTypedData(domain, types, request, signature)
}

/**
 * The id of the grant made for `runIndex` (the capsule's run count before the grant):
 * `keccak256(abi.encode(chainId, accessController, capsuleId, executor, ephemeralKey, measurement, runIndex))`.
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
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(
      ['uint256', 'address', 'bytes32', 'address', 'bytes32', 'bytes32', 'uint256'],
      [
        params.chainId,
        params.accessController,
        params.capsuleId,
        params.executor,
        params.ephemeralKey,
        params.measurement,
        params.runIndex,
      ],
    ),
  )
}
