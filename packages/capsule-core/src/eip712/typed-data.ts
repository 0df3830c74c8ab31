/**
 * EIP-712 typed-data hashing: the one encoder of Digicap (structs, arrays, atomic types),
 * checked against the EIP's own "Mail" example and ethers' `TypedDataEncoder`. keccak-256
 * from `@noble/hashes`; no ethers.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { abiWord } from '../encoding/abi.ts'
import { type Address, addressToBytes } from '../encoding/address.ts'
import { bytesArg, concatBytes, utf8 } from '../encoding/bytes.ts'
import type { Hex } from '../encoding/hex.ts'
import { InvalidArgumentError } from '../errors.ts'

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

/** The struct types of a typed-data object, by name. */
export type TypedDataTypes = Record<string, TypedDataField[]>

/**
 * A typed-data object, in the shape viem's `signTypedData` takes and ethers'
 * `signTypedData(domain, types, message)` takes apart.
 */
export interface TypedData {
  domain: TypedDataDomain
  /** Struct types; an `EIP712Domain` entry is ignored (the domain type derives from `domain`). */
  types: TypedDataTypes
  primaryType: string
  message: Record<string, unknown>
}

const DOMAIN_FIELDS: readonly TypedDataField[] = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
  { name: 'salt', type: 'bytes32' },
]

/** The struct type `name` of `types`, own entries only (`constructor`, `toString` … are no struct). */
function structOf(types: TypedDataTypes, name: string): TypedDataField[] | undefined {
  return Object.hasOwn(types, name) ? types[name] : undefined
}

function baseType(type: string): string {
  const i = type.indexOf('[')
  return i === -1 ? type : type.slice(0, i)
}

function dependencies(primary: string, types: TypedDataTypes, found = new Set<string>()) {
  const fields = structOf(types, primary)
  if (found.has(primary) || !fields) return found
  found.add(primary)
  for (const f of fields) dependencies(baseType(f.type), types, found)
  return found
}

/** `encodeType` of EIP-712: the primary type, then its dependencies sorted by name. */
export function encodeTypedDataType(primary: string, types: TypedDataTypes): string {
  const deps = [...dependencies(primary, types)].filter((t) => t !== primary).sort()
  return [primary, ...deps]
    .map((t) => `${t}(${(structOf(types, t) ?? []).map((f) => `${f.type} ${f.name}`).join(',')})`)
    .join('')
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
  types: TypedDataTypes,
): Uint8Array {
  if (structOf(types, type)) return hashStruct(type, value as Record<string, unknown>, types)
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
    out.set(addressToBytes(value as string, name), 12)
    return out
  }
  if (type === 'bool') {
    // Strict: the string 'false' is not false (nor truthy true).
    if (typeof value !== 'boolean')
      throw new InvalidArgumentError(`typed data: ${name} must be a boolean`)
    return abiWord(value ? 1n : 0n)
  }
  const bytesN = /^bytes([1-9][0-9]?)$/.exec(type)
  if (bytesN && Number(bytesN[1]) <= 32) {
    const out = new Uint8Array(32)
    out.set(bytesArg(name, value as Uint8Array | string, Number(bytesN[1])))
    return out
  }
  const intN = /^(u?)int([1-9][0-9]{0,2})?$/.exec(type)
  const intBits = intN ? Number(intN[2] ?? '256') : 0
  if (intN && intBits % 8 === 0 && intBits <= 256) {
    const bits = BigInt(intBits)
    const v = toBigInt(name, value)
    const ok = intN[1]
      ? v >= 0n && v < 1n << bits
      : v >= -(1n << (bits - 1n)) && v < 1n << (bits - 1n)
    if (!ok) throw new InvalidArgumentError(`typed data: ${name} is out of range for ${type}`)
    return abiWord(v)
  }
  throw new InvalidArgumentError(`typed data: unknown type ${type}`)
}

/**
 * Type hashes by encoded type, and domain separators by domain: a signer hashes the same few
 * types and domains again and again (a PBFT member signs a vote per phase; ADR 0053). Only
 * results of successful hashes are kept, and callers never get the kept arrays.
 */
const TYPE_HASHES = new Map<string, Uint8Array>()
const SEPARATORS = new Map<string, Uint8Array>()
const KEPT = 256

function kept(map: Map<string, Uint8Array>, key: string, make: () => Uint8Array): Uint8Array {
  let value = map.get(key)
  if (value === undefined) {
    value = make()
    if (map.size >= KEPT) map.clear()
    map.set(key, value)
  }
  return value
}

function typeHash(encodedType: string): Uint8Array {
  return kept(TYPE_HASHES, encodedType, () => keccak_256(utf8.encode(encodedType)))
}

/** `hashStruct` of EIP-712: keccak256(typeHash || encodeData(value)). */
export function hashStruct(
  primary: string,
  value: Record<string, unknown>,
  types: TypedDataTypes,
): Uint8Array {
  const fields = structOf(types, primary)
  if (!fields) throw new InvalidArgumentError(`typed data: unknown type ${primary}`)
  if (typeof value !== 'object' || value === null) {
    throw new InvalidArgumentError(`typed data: ${primary} value must be an object`)
  }
  const encoded = fields.map((f) => encodeValue(f.name, f.type, value[f.name], types))
  return keccak_256(concatBytes(typeHash(encodeTypedDataType(primary, types)), ...encoded))
}

/** The domain separator, kept by its fields' values (the kept array: not for callers). */
function domainSeparator(domain: TypedDataDomain): Uint8Array {
  const key = JSON.stringify(
    DOMAIN_FIELDS.map((f) => {
      const v: unknown = domain[f.name as keyof TypedDataDomain]
      return [typeof v, typeof v === 'bigint' ? String(v) : v]
    }),
  )
  return kept(SEPARATORS, key, () => {
    const fields = DOMAIN_FIELDS.filter(
      (f) => domain[f.name as keyof TypedDataDomain] !== undefined,
    )
    return hashStruct('EIP712Domain', domain as Record<string, unknown>, { EIP712Domain: fields })
  })
}

/** The EIP-712 domain separator of `domain`. */
export function hashTypedDataDomain(domain: TypedDataDomain): Uint8Array {
  return domainSeparator(domain).slice()
}

/**
 * The EIP-712 digest `keccak256(0x1901 || domainSeparator || hashStruct(message))`.
 *
 * @throws {InvalidArgumentError} for values that do not fit their declared types, and for
 *   types EIP-712 does not have (`bytes0`, `bytes33`, `uint7`, a name that is only an
 *   `Object.prototype` member such as `constructor`); a `bool` must be a boolean.
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
      domainSeparator(data.domain),
      hashStruct(data.primaryType, data.message, types),
    ),
  )
}
