/**
 * EIP-712 typed-data hashing and the owner's header signature.
 *
 * A small, general EIP-712 encoder (structs, arrays, atomic types) checked against the
 * EIP's own "Mail" example, plus the Digicap `Capsule` struct. Signing and recovery use
 * `@noble/curves` secp256k1 and `@noble/hashes` keccak-256; no ethers.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  type Address,
  addressBytes,
  bytesArg,
  checksumAddress,
  concatBytes,
  fromHex,
  type Hex,
  toHex,
  utf8,
} from './bytes.ts'
import { CapsuleSignatureError, InvalidArgumentError } from './errors.ts'
import { CAPSULE_SIGNATURE_LENGTH, type CapsuleHeader, encodeCapsuleHeader } from './header.ts'

/** One field of an EIP-712 struct type. */
export interface TypedDataField {
  name: string
  type: string
}

/** The EIP-712 domain (only the fields present take part in the hash). */
export interface TypedDataDomain {
  name?: string
  version?: string
  chainId?: number | bigint
  verifyingContract?: Address
  salt?: Hex
}

/** A typed-data object, in the shape ethers' `signTypedData(domain, types, message)` takes. */
export interface TypedData {
  domain: TypedDataDomain
  /** Struct types, without `EIP712Domain` (ethers derives it from `domain`). */
  types: Record<string, TypedDataField[]>
  primaryType: string
  message: Record<string, unknown>
}

const DOMAIN_FIELDS: TypedDataField[] = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
  { name: 'salt', type: 'bytes32' },
]

function baseType(type: string): string {
  const i = type.indexOf('[')
  return i === -1 ? type : type.slice(0, i)
}

function dependencies(
  primary: string,
  types: Record<string, TypedDataField[]>,
  found = new Set<string>(),
) {
  if (found.has(primary) || !types[primary]) return found
  found.add(primary)
  for (const f of types[primary]) dependencies(baseType(f.type), types, found)
  return found
}

/** `encodeType` of EIP-712: the primary type, then its dependencies sorted by name. */
export function encodeTypedDataType(
  primary: string,
  types: Record<string, TypedDataField[]>,
): string {
  const deps = [...dependencies(primary, types)].filter((t) => t !== primary).sort()
  return [primary, ...deps]
    .map((t) => `${t}(${(types[t] ?? []).map((f) => `${f.type} ${f.name}`).join(',')})`)
    .join('')
}

function word(n: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let v = BigInt.asUintN(256, n)
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function toBigInt(name: string, v: unknown): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v)
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|-?[0-9]+)$/.test(v)) return BigInt(v)
  throw new InvalidArgumentError(`typed data: ${name} is not an integer`)
}

function encodeValue(
  name: string,
  type: string,
  value: unknown,
  types: Record<string, TypedDataField[]>,
): Uint8Array {
  if (types[type]) return hashStruct(type, value as Record<string, unknown>, types)
  if (type.endsWith(']')) {
    if (!Array.isArray(value))
      throw new InvalidArgumentError(`typed data: ${name} must be an array`)
    const inner = type.slice(0, type.lastIndexOf('['))
    return keccak_256(
      concatBytes(...value.map((v, i) => encodeValue(`${name}[${i}]`, inner, v, types))),
    )
  }
  if (type === 'string') {
    if (typeof value !== 'string')
      throw new InvalidArgumentError(`typed data: ${name} must be a string`)
    return keccak_256(utf8.encode(value))
  }
  if (type === 'bytes') return keccak_256(bytesArg(name, value as Uint8Array | string))
  if (type === 'address') {
    const out = new Uint8Array(32)
    out.set(addressBytes(name, value as string), 12)
    return out
  }
  if (type === 'bool') return word(value ? 1n : 0n)
  const bytesN = /^bytes([0-9]+)$/.exec(type)
  if (bytesN) {
    const out = new Uint8Array(32)
    out.set(bytesArg(name, value as Uint8Array | string, Number(bytesN[1])))
    return out
  }
  const intN = /^(u?)int([0-9]*)$/.exec(type)
  if (intN) {
    const bits = BigInt(intN[2] || '256')
    const v = toBigInt(name, value)
    const ok = intN[1]
      ? v >= 0n && v < 1n << bits
      : v >= -(1n << (bits - 1n)) && v < 1n << (bits - 1n)
    if (!ok) throw new InvalidArgumentError(`typed data: ${name} is out of range for ${type}`)
    return word(v)
  }
  throw new InvalidArgumentError(`typed data: unknown type ${type}`)
}

/** `hashStruct` of EIP-712: keccak256(typeHash || encodeData(value)). */
export function hashStruct(
  primary: string,
  value: Record<string, unknown>,
  types: Record<string, TypedDataField[]>,
): Uint8Array {
  const fields = types[primary]
  if (!fields) throw new InvalidArgumentError(`typed data: unknown type ${primary}`)
  if (typeof value !== 'object' || value === null) {
    throw new InvalidArgumentError(`typed data: ${primary} value must be an object`)
  }
  const typeHash = keccak_256(utf8.encode(encodeTypedDataType(primary, types)))
  return keccak_256(
    concatBytes(typeHash, ...fields.map((f) => encodeValue(f.name, f.type, value[f.name], types))),
  )
}

/** The EIP-712 domain separator of `domain`. */
export function hashTypedDataDomain(domain: TypedDataDomain): Uint8Array {
  const fields = DOMAIN_FIELDS.filter((f) => domain[f.name as keyof TypedDataDomain] !== undefined)
  return hashStruct('EIP712Domain', domain as Record<string, unknown>, { EIP712Domain: fields })
}

/**
 * The EIP-712 digest `keccak256(0x1901 || domainSeparator || hashStruct(message))`.
 *
 * @throws {InvalidArgumentError} for values that do not fit their declared types.
 * @example
 * ```ts
 * const digest = hashTypedData(capsuleTypedData(header))
 * ```
 */
export function hashTypedData(data: TypedData): Uint8Array {
  const types = { ...data.types }
  delete types.EIP712Domain
  return keccak_256(
    concatBytes(
      new Uint8Array([0x19, 0x01]),
      hashTypedDataDomain(data.domain),
      hashStruct(data.primaryType, data.message, types),
    ),
  )
}

/** The `Capsule` struct a wallet shows and signs. */
export const CAPSULE_TYPED_DATA_TYPES: Record<string, TypedDataField[]> = {
  Capsule: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'owner', type: 'address' },
    { name: 'policy', type: 'address' },
    { name: 'keyguard', type: 'string' },
    { name: 'runtime', type: 'string' },
    { name: 'plaintextSize', type: 'uint64' },
    { name: 'createdAt', type: 'uint64' },
    { name: 'headerHash', type: 'bytes32' },
  ],
}

/** keccak256 of the canonical CBOR header bytes: what the signature and every chunk bind. */
export function capsuleHeaderHash(header: CapsuleHeader | Uint8Array): Uint8Array {
  return keccak_256(header instanceof Uint8Array ? header : encodeCapsuleHeader(header))
}

/**
 * The EIP-712 typed data an owner signs for `header`. Pass it to ethers as
 * `signer.signTypedData(td.domain, td.types, td.message)`.
 *
 * Domain: `{ name: 'Digicap', version: '1', chainId, verifyingContract: registry }`.
 *
 * @throws {InvalidArgumentError} if the header is not valid.
 * @example
 * ```ts
 * const td = capsuleTypedData(header)
 * const signature = await wallet.signTypedData(td.domain, td.types, td.message)
 * ```
 */
export function capsuleTypedData(header: CapsuleHeader): TypedData {
  const headerHash = capsuleHeaderHash(header)
  return {
    domain: {
      name: 'Digicap',
      version: '1',
      chainId: header.policy.chainId,
      verifyingContract: checksumAddress(addressBytes('registry', header.policy.registry)),
    },
    types: { Capsule: CAPSULE_TYPED_DATA_TYPES.Capsule as TypedDataField[] },
    primaryType: 'Capsule',
    message: {
      capsuleId: toHex(header.capsuleId),
      owner: checksumAddress(addressBytes('owner', header.owner)),
      policy: checksumAddress(addressBytes('policy', header.policy.policy)),
      keyguard: header.keyguard.peerId,
      runtime: header.runtime.kind,
      plaintextSize: BigInt(header.payload.plaintextSize),
      createdAt: BigInt(header.createdAt),
      headerHash: toHex(headerHash),
    },
  }
}

/** The 32-byte EIP-712 digest of {@link capsuleTypedData}. */
export function capsuleSigningDigest(header: CapsuleHeader): Uint8Array {
  return hashTypedData(capsuleTypedData(header))
}

/**
 * Signs a 32-byte digest; returns `r || s || v` (v = 27 or 28), low-s, RFC 6979 deterministic.
 *
 * @throws {InvalidArgumentError} if the key is not a valid 32-byte secp256k1 key.
 */
export function signDigest(digest: Uint8Array, privateKey: Uint8Array | Hex): Uint8Array {
  const key = bytesArg('privateKey', privateKey, 32)
  bytesArg('digest', digest, 32)
  let rec: Uint8Array
  try {
    rec = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' })
  } catch (cause) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key', { cause })
  }
  const out = new Uint8Array(65)
  out.set(rec.subarray(1), 0)
  out[64] = 27 + (rec[0] as number)
  return out
}

/**
 * Recovers the signer address of an Ethereum-style 65-byte signature over a digest.
 * Rejects v other than 27/28 and high-s signatures (both would allow a second valid
 * encoding of the same signature).
 *
 * @throws {CapsuleSignatureError} if the signature is malformed or recovers no key.
 */
export function recoverDigestSigner(digest: Uint8Array, signature: Uint8Array | Hex): Address {
  const sig = typeof signature === 'string' ? signatureFromHex(signature) : signature
  if (!(sig instanceof Uint8Array) || sig.length !== CAPSULE_SIGNATURE_LENGTH) {
    throw new CapsuleSignatureError('signature must be 65 bytes (r || s || v)', {
      details: { length: sig instanceof Uint8Array ? sig.length : typeof sig },
    })
  }
  const v = sig[64] as number
  if (v !== 27 && v !== 28) {
    throw new CapsuleSignatureError('signature v must be 27 or 28', { details: { v } })
  }
  const rec = new Uint8Array(65)
  rec[0] = v - 27
  rec.set(sig.subarray(0, 64), 1)
  try {
    const s = secp256k1.Signature.fromBytes(rec, 'recovered')
    if (s.hasHighS()) throw new Error('high s')
    const pub = secp256k1.recoverPublicKey(rec, digest, { prehash: false })
    const uncompressed = secp256k1.Point.fromBytes(pub).toBytes(false)
    return checksumAddress(keccak_256(uncompressed.subarray(1)).subarray(12))
  } catch (cause) {
    throw new CapsuleSignatureError('signature does not recover a public key', {
      cause,
      hint: 'The signature is malformed (zero or out-of-range r/s, or high s).',
    })
  }
}

function signatureFromHex(hex: string): Uint8Array {
  try {
    return fromHex('signature', hex)
  } catch (cause) {
    throw new CapsuleSignatureError('signature is not a hex string', { cause })
  }
}

/**
 * Signs a header as its owner, with noble (for tools and tests; wallets use
 * {@link capsuleTypedData} with ethers or viem instead).
 *
 * @throws {InvalidArgumentError} if the header is invalid or the key does not belong to `header.owner`.
 * @example
 * ```ts
 * const signature = signCapsuleHeader(header, ownerPrivateKey)
 * ```
 */
export function signCapsuleHeader(header: CapsuleHeader, privateKey: Uint8Array | Hex): Uint8Array {
  const digest = capsuleSigningDigest(header)
  const sig = signDigest(digest, privateKey)
  const signer = recoverDigestSigner(digest, sig)
  if (signer !== checksumAddress(addressBytes('owner', header.owner))) {
    throw new InvalidArgumentError('privateKey does not belong to header.owner', {
      details: { owner: header.owner, signer },
    })
  }
  return sig
}

/** The Ethereum address of a secp256k1 private key. */
export function addressFromPrivateKey(privateKey: Uint8Array | Hex): Address {
  const key = bytesArg('privateKey', privateKey, 32)
  let pub: Uint8Array
  try {
    pub = secp256k1.getPublicKey(key, false)
  } catch (cause) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key', { cause })
  }
  return checksumAddress(keccak_256(pub.subarray(1)).subarray(12))
}
