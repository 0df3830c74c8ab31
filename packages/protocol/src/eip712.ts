/**
 * EIP-712 typed data of an {@link AccessRequest} (SPEC.md §4): the digest an executor signs,
 * the typed-data object any EIP-712 wallet accepts, and signer recovery with `@noble/curves`.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { abiWord, concat, leftPad32 } from './bytes.ts'
import { WireSignatureError } from './errors.ts'
import { type AccessRequest, ADDRESS_LENGTH, ID_LENGTH, SIGNATURE_LENGTH } from './messages.ts'

/** An Ethereum address as `0x` + 40 hex digits (checksummed on output). */
export type Address = `0x${string}`

/** The EIP-712 domain of fast-path access requests. `name` and `version` are fixed. */
export interface AccessDomain {
  /** EIP-155 chain id of the chain the capsule is registered on. */
  chainId: bigint | number
  /** The AccessController contract the grant will be logged to. */
  verifyingContract: Address
}

/** `EIP712Domain.name` of every Digicap access request. */
export const ACCESS_DOMAIN_NAME = 'DigicapAccessController'
/** `EIP712Domain.version` of every Digicap access request. */
export const ACCESS_DOMAIN_VERSION = '1'

/** The EIP-712 type of {@link AccessRequest} (every field but the signature). */
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

const DOMAIN_TYPE =
  'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'
const REQUEST_TYPE =
  'AccessRequest(bytes32 capsuleId,address executor,bytes32 ephemeralKey,bytes32 measurement,bytes32 jobParamsHash,uint256 fee,uint256 nonce,uint64 expiry)'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

function toHex(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}

function hexToBytes(hex: string, length: number, name: string): Uint8Array {
  if (typeof hex !== 'string' || !/^0x[0-9a-fA-F]*$/.test(hex) || hex.length !== 2 + 2 * length) {
    throw new InvalidArgumentError(`${name} must be 0x + ${2 * length} hex digits`, {
      details: { field: name },
    })
  }
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Number.parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16)
  return out
}

function checkBytes(name: string, value: unknown, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new InvalidArgumentError(`${name} must be a ${length}-byte Uint8Array`, {
      details: { field: name },
    })
  }
  return value
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

function checkChainId(chainId: bigint | number): bigint {
  const id =
    typeof chainId === 'number' && Number.isSafeInteger(chainId) ? BigInt(chainId) : chainId
  if (typeof id !== 'bigint' || id <= 0n || id >= 1n << 256n) {
    throw new InvalidArgumentError('domain.chainId must be a positive integer', {
      details: { field: 'chainId' },
    })
  }
  return id
}

/**
 * EIP-55 checksummed form of a 20-byte address.
 *
 * @throws {InvalidArgumentError} if `address` is not 20 bytes.
 */
export function toChecksumAddress(address: Uint8Array): Address {
  const hex = toHex(checkBytes('address', address, ADDRESS_LENGTH))
  const hash = toHex(keccak_256(utf8(hex)))
  let out = '0x'
  for (let i = 0; i < 40; i++) {
    const c = hex[i] as string
    out += Number.parseInt(hash[i] as string, 16) >= 8 ? c.toUpperCase() : c
  }
  return out as Address
}

/**
 * The 20 bytes of a `0x…` address (any case; the checksum is not enforced).
 *
 * @throws {InvalidArgumentError} for a string that is not `0x` + 40 hex digits.
 */
export function addressToBytes(address: Address): Uint8Array {
  return hexToBytes(address, ADDRESS_LENGTH, 'address')
}

/**
 * `hashStruct(EIP712Domain)` of the access domain.
 *
 * @throws {InvalidArgumentError} for a bad chain id or contract address.
 */
export function accessDomainSeparator(domain: AccessDomain): Uint8Array {
  return keccak_256(
    concat(
      keccak_256(utf8(DOMAIN_TYPE)),
      keccak_256(utf8(ACCESS_DOMAIN_NAME)),
      keccak_256(utf8(ACCESS_DOMAIN_VERSION)),
      abiWord(checkChainId(domain.chainId)),
      leftPad32(addressToBytes(domain.verifyingContract)),
    ),
  )
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
  checkRequestFields(req)
  const structHash = keccak_256(
    concat(
      keccak_256(utf8(REQUEST_TYPE)),
      req.capsuleId,
      leftPad32(req.executor),
      req.ephemeralKey,
      req.measurement,
      req.jobParamsHash,
      abiWord(req.fee),
      req.nonce,
      abiWord(req.expiry),
    ),
  )
  return concat(new Uint8Array([0x19, 0x01]), accessDomainSeparator(domain), structHash)
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
  domain: { name: string; version: string; chainId: bigint; verifyingContract: Address }
  types: typeof ACCESS_REQUEST_TYPES
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
  const hex = (b: Uint8Array): `0x${string}` => `0x${toHex(b)}`
  return {
    domain: {
      name: ACCESS_DOMAIN_NAME,
      version: ACCESS_DOMAIN_VERSION,
      chainId: checkChainId(domain.chainId),
      verifyingContract: toChecksumAddress(addressToBytes(domain.verifyingContract)),
    },
    types: ACCESS_REQUEST_TYPES,
    primaryType: 'AccessRequest',
    message: {
      capsuleId: hex(req.capsuleId),
      executor: toChecksumAddress(req.executor),
      ephemeralKey: hex(req.ephemeralKey),
      measurement: hex(req.measurement),
      jobParamsHash: hex(req.jobParamsHash),
      fee: req.fee,
      nonce: BigInt(hex(req.nonce)),
      expiry: req.expiry,
    },
  }
}

const HALF_N = secp256k1.Point.CURVE().n >> 1n

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
  const sig = req.signature
  if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_LENGTH) {
    throw new WireSignatureError('Signature must be 65 bytes', { details: { field: 'signature' } })
  }
  const v = sig[64] as number
  if (v !== 27 && v !== 28) {
    throw new WireSignatureError('Signature v must be 27 or 28', {
      details: { field: 'signature', v },
    })
  }
  let s = 0n
  for (const b of sig.subarray(32, 64)) s = (s << 8n) | BigInt(b)
  if (s > HALF_N) {
    throw new WireSignatureError('Signature s is not in the lower half order (EIP-2)', {
      details: { field: 'signature' },
    })
  }
  try {
    const recovered = new Uint8Array(65)
    recovered[0] = v - 27
    recovered.set(sig.subarray(0, 64), 1)
    const point = secp256k1.Signature.fromBytes(recovered, 'recovered').recoverPublicKey(digest)
    const pub = point.toBytes(false)
    return toChecksumAddress(keccak_256(pub.subarray(1)).subarray(12))
  } catch (cause) {
    throw new WireSignatureError('Signature does not recover to a public key', {
      details: { field: 'signature' },
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
  if (!secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key')
  }
  const digest = accessRequestDigest(req, domain)
  const rec = secp256k1.sign(digest, privateKey, { prehash: false, format: 'recovered' })
  const signature = new Uint8Array(SIGNATURE_LENGTH)
  signature.set(rec.subarray(1, 65), 0)
  signature[64] = 27 + (rec[0] as number)
  return { ...req, signature }
}

/**
 * The Ethereum address of a secp256k1 private key.
 *
 * @throws {InvalidArgumentError} for a key that is not 32 valid bytes.
 */
export function addressOfPrivateKey(privateKey: Uint8Array): Uint8Array {
  checkBytes('privateKey', privateKey, 32)
  if (!secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key')
  }
  return keccak_256(secp256k1.getPublicKey(privateKey, false).subarray(1)).subarray(12)
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
  return concat(
    checkBytes('executor', req.executor, ADDRESS_LENGTH),
    checkBytes('nonce', req.nonce, ID_LENGTH),
  )
}
