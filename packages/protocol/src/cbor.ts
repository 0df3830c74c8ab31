/**
 * Canonical CBOR (RFC 8949 §4.2.1 core deterministic encoding, as `cborg` writes it) and
 * strict field readers. Decoding rejects anything that would not re-encode to the very same
 * bytes: non-minimal integers and lengths, indefinite lengths, unsorted or duplicate keys,
 * floats, tags, undefined, and trailing bytes.
 */
import { equalBytes, strictCborDecodeOptions } from '@digicap/capsule-core'
import { decode, encode } from 'cborg'
import { WireFormatError, WireVersionError } from './errors.ts'

/** The one wire version this library speaks (`v` in every message). */
export const WIRE_VERSION = 1

/** Largest value a `u64` field may hold. */
export const MAX_U64 = (1n << 64n) - 1n

// capsule-core's strict options; u64 fields need bigints above 2^53.
const DECODE_OPTIONS = strictCborDecodeOptions({ allowBigInt: true })

/** A decoded message body: a CBOR map with text keys. */
export type WireMap = Record<string, unknown>

/** Encodes a message map canonically. */
export function encodeCanonical(map: WireMap): Uint8Array {
  const out = encode(map)
  // cborg hands back a Buffer under Node; callers get a plain Uint8Array.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Decodes a message body: canonical CBOR, a map, `v` = `version` (default 1), a text `t`.
 * `version: 'any'` skips the version check (to peek at the type of a reply whose version
 * depends on the protocol, SPEC.md §7).
 *
 * @throws {WireFormatError} for bytes that are not one canonical CBOR map with `v` and `t`.
 * @throws {WireVersionError} for a `v` other than `version`.
 */
export function decodeEnvelope(
  body: Uint8Array,
  version: number | 'any' = WIRE_VERSION,
): { type: string; map: WireMap } {
  if (!(body instanceof Uint8Array)) {
    throw new WireFormatError('Message body must be a Uint8Array', {
      details: { got: typeof body },
    })
  }
  let value: unknown
  try {
    value = decode(body, DECODE_OPTIONS)
  } catch (cause) {
    throw new WireFormatError('Message body is not valid CBOR', {
      details: { length: body.length, reason: 'cbor' },
      cause,
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WireFormatError('Message body is not a CBOR map', { details: { reason: 'not-map' } })
  }
  if (value instanceof Uint8Array) {
    throw new WireFormatError('Message body is not a CBOR map', { details: { reason: 'not-map' } })
  }
  const map = value as WireMap
  const v = map.v
  if (!Object.hasOwn(map, 'v')) {
    throw new WireFormatError('Message has no version field', {
      details: { field: 'v', reason: 'missing' },
    })
  }
  if (typeof v !== 'number' && typeof v !== 'bigint') {
    throw new WireFormatError('Message version is not an integer', {
      details: { field: 'v', reason: 'type' },
    })
  }
  if (version !== 'any' && v !== version) {
    throw new WireVersionError('Unsupported message version', {
      details: { field: 'v', version: v, supported: version },
      hint: 'The peer speaks another version of this protocol; upgrade one side.',
    })
  }
  let canonical: Uint8Array
  try {
    canonical = encode(map)
  } catch (cause) {
    throw new WireFormatError('Message body cannot be re-encoded', {
      details: { reason: 'non-canonical' },
      cause,
    })
  }
  if (!equalBytes(canonical, body)) {
    throw new WireFormatError('Message body is not canonical CBOR', {
      details: { reason: 'non-canonical' },
      hint: 'Encode with deterministic CBOR: minimal integers, sorted keys, definite lengths.',
    })
  }
  const t = map.t
  if (typeof t !== 'string') {
    throw new WireFormatError('Message has no text type tag', {
      details: { field: 't', reason: Object.hasOwn(map, 't') ? 'type' : 'missing' },
    })
  }
  return { type: t, map }
}

/**
 * Checks that `map` has exactly the `required` keys plus any of the `optional` ones
 * (`v` and `t` are always required).
 *
 * @throws {WireFormatError} naming the first missing or unknown field.
 */
export function checkFields(
  map: WireMap,
  type: string,
  required: readonly string[],
  optional: readonly string[] = [],
): void {
  for (const name of ['v', 't', ...required]) {
    if (!Object.hasOwn(map, name)) {
      throw new WireFormatError(`Missing field in ${type}`, {
        details: { type, field: name, reason: 'missing' },
      })
    }
  }
  const allowed = new Set(['v', 't', ...required, ...optional])
  for (const name of Object.keys(map)) {
    if (!allowed.has(name)) {
      throw new WireFormatError(`Unknown field in ${type}`, {
        details: { type, field: name, reason: 'unknown' },
      })
    }
  }
}

/**
 * Reads a byte-string field.
 *
 * @throws {WireFormatError} for a missing, non-bytes or wrong-length field.
 */
export function readBytes(
  map: WireMap,
  type: string,
  field: string,
  length: number | { min: number; max: number },
): Uint8Array {
  const value = map[field]
  if (!(value instanceof Uint8Array)) {
    throw new WireFormatError(`Field ${field} of ${type} is not a byte string`, {
      details: { type, field, reason: 'type' },
    })
  }
  const ok =
    typeof length === 'number'
      ? value.length === length
      : value.length >= length.min && value.length <= length.max
  if (!ok) {
    throw new WireFormatError(`Field ${field} of ${type} has the wrong length`, {
      details: {
        type,
        field,
        reason: 'length',
        length: value.length,
        ...(typeof length === 'number' ? { expected: length } : length),
      },
    })
  }
  // A copy: the caller may zero or keep it without aliasing the frame buffer.
  return new Uint8Array(value)
}

/**
 * Reads a text field, optionally one of a fixed set, at most `maxBytes` UTF-8 bytes.
 *
 * @throws {WireFormatError} for a missing, non-text, too-long or unknown value.
 */
export function readText<T extends string = string>(
  map: WireMap,
  type: string,
  field: string,
  options: { oneOf?: readonly T[]; maxBytes?: number; pattern?: RegExp },
): T {
  const value = map[field]
  if (typeof value !== 'string') {
    throw new WireFormatError(`Field ${field} of ${type} is not a text string`, {
      details: { type, field, reason: 'type' },
    })
  }
  if (options.maxBytes !== undefined && new TextEncoder().encode(value).length > options.maxBytes) {
    throw new WireFormatError(`Field ${field} of ${type} is too long`, {
      details: { type, field, reason: 'length', maxBytes: options.maxBytes },
    })
  }
  if (options.oneOf !== undefined && !(options.oneOf as readonly string[]).includes(value)) {
    throw new WireFormatError(`Field ${field} of ${type} has an unknown value`, {
      details: { type, field, reason: 'value', allowed: options.oneOf },
    })
  }
  if (options.pattern !== undefined && !options.pattern.test(value)) {
    throw new WireFormatError(`Field ${field} of ${type} is malformed`, {
      details: { type, field, reason: 'value' },
    })
  }
  return value as T
}

/**
 * Reads a boolean field.
 *
 * @throws {WireFormatError} for a missing or non-boolean field.
 */
export function readBool(map: WireMap, type: string, field: string): boolean {
  const value = map[field]
  if (typeof value !== 'boolean') {
    throw new WireFormatError(`Field ${field} of ${type} is not a boolean`, {
      details: { type, field, reason: 'type' },
    })
  }
  return value
}

/**
 * Reads an unsigned integer field in `[0, max]` as a bigint.
 *
 * @throws {WireFormatError} for a missing, negative, non-integer or too-large field.
 */
export function readUint(map: WireMap, type: string, field: string, max: bigint): bigint {
  const value = map[field]
  let n: bigint
  if (typeof value === 'bigint') n = value
  else if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value)
  else {
    throw new WireFormatError(`Field ${field} of ${type} is not an integer`, {
      details: { type, field, reason: 'type' },
    })
  }
  if (n < 0n || n > max) {
    throw new WireFormatError(`Field ${field} of ${type} is out of range`, {
      details: { type, field, reason: 'range', max },
    })
  }
  return n
}

/** Wire form of a u64: a plain number when it is safe, else a bigint (same CBOR bytes). */
export function u64(n: bigint): number | bigint {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}
