/**
 * The code+data bundle (docs/bundle.md): the plaintext of a code capsule, canonical CBOR
 * `{"v": 1, "data": bstr, "entry": tstr, "files": {tstr: bstr}}`. Here, in the lowest
 * package, so an owner encodes it and an executor decodes it without depending on each other.
 */
import { decode, encode } from 'cborg'
import { strictCborDecodeOptions } from '../encoding/cbor.ts'
import { BundleFormatError } from '../errors.ts'

/** Bundle format version this library writes and reads. */
export const BUNDLE_VERSION = 1
/** Default cap on a bundle's encoded size (256 MiB). */
export const DEFAULT_MAX_BUNDLE_BYTES = 256 * 1024 * 1024
const MAX_FILES = 256
const MAX_NAME = 255
const NAME_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/

/** Code and data in one plaintext. */
export interface Bundle {
  /** Name of the file the runtime starts (must be a key of `files`). */
  readonly entry: string
  /** Code files by relative name. */
  readonly files: Readonly<Record<string, Uint8Array>>
  /** The data the program reads (`digicap.input()`, WASI `/input`). */
  readonly data: Uint8Array
}

function fail(reason: string, details: Record<string, unknown> = {}): never {
  throw new BundleFormatError('Malformed code+data bundle', { details: { reason, ...details } })
}

function checkName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME || !NAME_RE.test(name)) {
    fail('bad file name', { name: name.slice(0, 64) })
  }
  if (name === '__proto__') fail('reserved file name', { name })
  if (name.split('/').some((seg) => seg === '.' || seg === '..')) {
    fail('file name has a . or .. segment', { name: name.slice(0, 64) })
  }
}

function checkBundle(b: Bundle): void {
  if (b === null || typeof b !== 'object') fail('bundle must be an object')
  if (typeof b.entry !== 'string') fail('entry must be a string')
  if (b.files === null || typeof b.files !== 'object' || Array.isArray(b.files)) {
    fail('files must be a map')
  }
  const names = Object.keys(b.files)
  if (names.length === 0 || names.length > MAX_FILES)
    fail('file count out of range', { count: names.length })
  for (const n of names) {
    checkName(n)
    if (!(b.files[n] instanceof Uint8Array)) fail('file content must be bytes', { name: n })
  }
  checkName(b.entry)
  if (!Object.hasOwn(b.files, b.entry)) fail('entry is not one of the files', { entry: b.entry })
  if (!(b.data instanceof Uint8Array)) fail('data must be bytes')
}

/**
 * Encode a bundle as canonical CBOR: `{"v": 1, "data": bstr, "entry": tstr, "files": {tstr: bstr}}`
 * (RFC 8949 §4.2.1 deterministic encoding: definite lengths, shortest forms, sorted keys).
 * @throws BundleFormatError for a bad entry, file name or type.
 * @example
 * ```ts
 * const bytes = encodeBundle({ entry: 'main.js', files: { 'main.js': code }, data: csv })
 * ```
 */
export function encodeBundle(bundle: Bundle): Uint8Array {
  checkBundle(bundle)
  const files: Record<string, Uint8Array> = {}
  for (const n of Object.keys(bundle.files)) files[n] = bundle.files[n]!
  return encode({ v: BUNDLE_VERSION, entry: bundle.entry, files, data: bundle.data })
}

/** Options of {@link decodeBundle}. */
export interface DecodeBundleOptions {
  /** Largest encoded bundle accepted (default {@link DEFAULT_MAX_BUNDLE_BYTES}). */
  readonly maxBytes?: number | undefined
}

/**
 * Decode a bundle strictly: the bytes must be exactly the canonical encoding of a valid
 * version-1 bundle — no other keys, no indefinite lengths, no duplicate keys, no tags,
 * no trailing bytes.
 * @throws BundleFormatError with `details.reason` saying what is wrong.
 */
export function decodeBundle(bytes: Uint8Array, options: DecodeBundleOptions = {}): Bundle {
  if (!(bytes instanceof Uint8Array)) fail('input must be a Uint8Array')
  const max = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES
  if (bytes.byteLength > max) fail('bundle too large', { bytes: bytes.byteLength, maxBytes: max })
  let value: unknown
  try {
    value = decode(bytes, strictCborDecodeOptions())
  } catch (err) {
    return fail('not valid canonical CBOR', { error: (err as Error).message.slice(0, 120) })
  }
  if (
    value === null ||
    typeof value !== 'object' ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    fail('top level must be a map')
  }
  const m = value as Record<string, unknown>
  const keys = Object.keys(m).sort()
  if (keys.join(',') !== 'data,entry,files,v') fail('unexpected keys', { keys: keys.slice(0, 8) })
  if (m.v !== BUNDLE_VERSION) fail('unsupported version', { version: String(m.v).slice(0, 16) })
  const files = m.files
  if (
    files === null ||
    typeof files !== 'object' ||
    Array.isArray(files) ||
    files instanceof Uint8Array
  ) {
    fail('files must be a map')
  }
  const bundle: Bundle = {
    entry: m.entry as string,
    files: files as Record<string, Uint8Array>,
    data: m.data as Uint8Array,
  }
  checkBundle(bundle)
  const again = encode({
    v: BUNDLE_VERSION,
    entry: bundle.entry,
    files: bundle.files,
    data: bundle.data,
  })
  if (again.byteLength !== bytes.byteLength || !again.every((b, i) => b === bytes[i])) {
    fail('not the canonical encoding')
  }
  return bundle
}
