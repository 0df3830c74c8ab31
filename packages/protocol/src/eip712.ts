/**
 * EIP-712 typed data of an {@link AccessRequest} (SPEC.md §4): the digest an executor signs,
 * the typed-data object any EIP-712 wallet accepts, and signer recovery. The struct, the
 * encoder, the hex and EIP-55 helpers and secp256k1 all come from capsule-core (one copy each);
 * this file maps the wire's byte fields onto them and the errors onto the wire's.
 */
import {
  ACCESS_DOMAIN_NAME,
  ACCESS_DOMAIN_VERSION,
  ACCESS_REQUEST_TYPES,
  type AccessRequestDomain,
  type Address,
  accessRequestDomain,
  addressFromPrivateKey,
  addressToBytes,
  CapsuleSignatureError,
  checksumAddress,
  concatBytes,
  type DigicapSigner,
  hashStruct,
  hashTypedDataDomain,
  InvalidArgumentError,
  normalizeAddress,
  recoverDigestSigner,
  signDigest,
  signTypedDataWith,
  type TypedDataField,
  toHex,
} from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { checkBytes } from './bytes.ts'
import { WireSignatureError } from './errors.ts'
import { type AccessRequest, ADDRESS_LENGTH, ID_LENGTH, SIGNATURE_LENGTH } from './messages.ts'

export type { Address }
export { ACCESS_DOMAIN_NAME, ACCESS_DOMAIN_VERSION, ACCESS_REQUEST_TYPES, addressToBytes }
/** EIP-55 checksummed form of a 20-byte address (capsule-core's `checksumAddress`). */
export const toChecksumAddress: (address: Uint8Array) => Address = checksumAddress

/** The EIP-712 domain of fast-path access requests. `name` and `version` are fixed. */
export interface AccessDomain {
  /** EIP-155 chain id of the chain the capsule is registered on. */
  chainId: bigint | number
  /** The AccessController contract the grant will be logged to. */
  verifyingContract: Address
}

function checkRequestFields(req: Omit<AccessRequest, 'signature' | 'jobParams'>): void {
  checkBytes('capsuleId', req.capsuleId, ID_LENGTH)
  checkBytes('executor', req.executor, ADDRESS_LENGTH)
  checkBytes('ephemeralKey', req.ephemeralKey, ID_LENGTH)
  checkBytes('measurement', req.measurement, ID_LENGTH)
  checkBytes('jobParamsHash', req.jobParamsHash, ID_LENGTH)
  checkBytes('nonce', req.nonce, ID_LENGTH)
  if (typeof req.fee !== 'bigint' || req.fee < 0n || req.fee >= 1n << 256n) {
    throw new InvalidArgumentError('fee must be a uint256 bigint', { details: { field: 'fee' } })
  }
  if (typeof req.expiry !== 'bigint' || req.expiry < 0n || req.expiry >= 1n << 64n) {
    throw new InvalidArgumentError('expiry must be a u64 bigint', {
      details: { field: 'expiry' },
    })
  }
}

/**
 * `hashStruct(EIP712Domain)` of the access domain.
 *
 * @throws {InvalidArgumentError} for a bad chain id or contract address.
 */
export function accessDomainSeparator(domain: AccessDomain): Uint8Array {
  return hashTypedDataDomain(accessRequestDomain(domain.chainId, domain.verifyingContract))
}

/**
 * The exact bytes whose keccak-256 is signed:
 * `0x19 0x01 || domainSeparator || hashStruct(AccessRequest)` (66 bytes).
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function accessRequestSigningBytes(
  req: Omit<AccessRequest, 'signature' | 'jobParams'>,
  domain: AccessDomain,
): Uint8Array {
  const td = accessRequestTypedData(req, domain)
  return concatBytes(
    new Uint8Array([0x19, 0x01]),
    hashTypedDataDomain(td.domain),
    hashStruct(td.primaryType, td.message as unknown as Record<string, unknown>, td.types),
  )
}

/**
 * The EIP-712 digest of an access request: `keccak256(accessRequestSigningBytes(req, domain))`.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function accessRequestDigest(
  req: Omit<AccessRequest, 'signature' | 'jobParams'>,
  domain: AccessDomain,
): Uint8Array {
  return keccak_256(accessRequestSigningBytes(req, domain))
}

/** EIP-712 typed data in the shape ethers (`signTypedData(domain, types, message)`) and viem take. */
export interface AccessRequestTypedData {
  domain: AccessRequestDomain
  types: { AccessRequest: TypedDataField[] }
  primaryType: 'AccessRequest'
  message: {
    capsuleId: `0x${string}`
    executor: Address
    ephemeralKey: `0x${string}`
    measurement: `0x${string}`
    jobParamsHash: `0x${string}`
    fee: bigint
    nonce: bigint
    expiry: bigint
  }
}

/**
 * The EIP-712 typed data of an access request, for a wallet to sign.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 * @example
 * ```ts
 * const td = accessRequestTypedData(req, { chainId: 31337n, verifyingContract })
 * const sig = await wallet.signTypedData(td.domain, td.types, td.message) // ethers v6
 * ```
 */
export function accessRequestTypedData(
  req: Omit<AccessRequest, 'signature' | 'jobParams'>,
  domain: AccessDomain,
): AccessRequestTypedData {
  checkRequestFields(req)
  return {
    domain: accessRequestDomain(domain.chainId, domain.verifyingContract),
    types: ACCESS_REQUEST_TYPES,
    primaryType: 'AccessRequest',
    message: {
      capsuleId: toHex(req.capsuleId),
      executor: checksumAddress(req.executor),
      ephemeralKey: toHex(req.ephemeralKey),
      measurement: toHex(req.measurement),
      jobParamsHash: toHex(req.jobParamsHash),
      fee: req.fee,
      nonce: BigInt(toHex(req.nonce)),
      expiry: req.expiry,
    },
  }
}

/**
 * Recovers the address that signed an access request. Compare it with `req.executor`
 * (or call {@link verifyAccessRequestSignature}).
 *
 * Accepts only `r || s || v` with v ∈ {27, 28} and low s (EIP-2), as Ethereum wallets emit.
 *
 * @throws {WireSignatureError} for a malformed, high-s or unrecoverable signature.
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function recoverAccessRequestSigner(req: AccessRequest, domain: AccessDomain): Address {
  const digest = accessRequestDigest(req, domain)
  if (!(req.signature instanceof Uint8Array) || req.signature.length !== SIGNATURE_LENGTH) {
    throw new WireSignatureError('Signature must be 65 bytes', { details: { field: 'signature' } })
  }
  try {
    return recoverDigestSigner(digest, req.signature)
  } catch (cause) {
    if (!(cause instanceof CapsuleSignatureError)) throw cause
    // v other than 27/28, high s (EIP-2), or no point: one wire error, the cause says which.
    throw new WireSignatureError(`Signature refused: ${cause.shortMessage}`, {
      details: { field: 'signature', ...cause.details },
      cause,
    })
  }
}

/**
 * True when the request's signature recovers to `req.executor`. Never throws for a bad
 * signature (returns false); throws only for a malformed request or domain.
 *
 * @throws {InvalidArgumentError} for a field of the wrong length or a bad domain.
 */
export function verifyAccessRequestSignature(req: AccessRequest, domain: AccessDomain): boolean {
  let signer: Address
  try {
    signer = recoverAccessRequestSigner(req, domain)
  } catch (err) {
    if (err instanceof WireSignatureError) return false
    throw err
  }
  return signer === toChecksumAddress(req.executor)
}

/**
 * Signs an access request with a secp256k1 private key (deterministic RFC 6979, low s) and
 * returns the request with its 65-byte `r || s || v` signature. The same bytes as
 * ethers' `Wallet.signTypedData` for the same key.
 *
 * @throws {InvalidArgumentError} for a bad key, field or domain.
 */
export function signAccessRequest(
  req: Omit<AccessRequest, 'signature'>,
  domain: AccessDomain,
  privateKey: Uint8Array,
): AccessRequest {
  checkBytes('privateKey', privateKey, 32)
  return { ...req, signature: signDigest(accessRequestDigest(req, domain), privateKey) }
}

/**
 * Signs an access request with any {@link DigicapSigner} (a key in memory, a hardware wallet,
 * a remote signer): the signer gets the typed data of {@link accessRequestTypedData}; the
 * answer is checked (65 bytes, low s, recovers to `req.executor`). The same bytes as
 * {@link signAccessRequest} for a key in memory.
 *
 * @throws {InvalidArgumentError} for a bad field, domain or signer address.
 * @throws {CapsuleSignatureError} (capsule-core's) if the signer is not `req.executor`, answers
 * a malformed signature or signs as another account.
 * @example
 * ```ts
 * const signed = await signAccessRequestWith(signer, req, { chainId, verifyingContract })
 * ```
 */
export async function signAccessRequestWith(
  signer: DigicapSigner,
  req: Omit<AccessRequest, 'signature'>,
  domain: AccessDomain,
): Promise<AccessRequest> {
  const executor = toChecksumAddress(checkBytes('executor', req.executor, ADDRESS_LENGTH))
  // The request names its executor: a signer for another account could only make a refused request.
  if (normalizeAddress(signer?.address, 'signer.address') !== executor) {
    throw new CapsuleSignatureError('The signer is not the request’s executor', {
      details: { executor, signer: signer.address },
      hint: 'Sign with the account the request names as executor.',
    })
  }
  const signature = await signTypedDataWith(signer, accessRequestTypedData(req, domain))
  return { ...req, signature }
}

/**
 * The Ethereum address of a secp256k1 private key.
 *
 * @throws {InvalidArgumentError} for a key that is not 32 valid bytes.
 */
export function addressOfPrivateKey(privateKey: Uint8Array): Uint8Array {
  checkBytes('privateKey', privateKey, 32)
  return addressToBytes(addressFromPrivateKey(privateKey))
}

/**
 * The replay-cache key of an access request: `executor (20) || nonce (32)`. Insert it only
 * after the signature checks out, so nobody can burn another executor's nonce.
 *
 * @throws {InvalidArgumentError} if `executor` or `nonce` has the wrong length.
 * @example
 * ```ts
 * replays.check(accessRequestReplayKey(req), Number(req.expiry) * 1000)
 * ```
 */
export function accessRequestReplayKey(req: Pick<AccessRequest, 'executor' | 'nonce'>): Uint8Array {
  return concatBytes(
    checkBytes('executor', req.executor, ADDRESS_LENGTH),
    checkBytes('nonce', req.nonce, ID_LENGTH),
  )
}
