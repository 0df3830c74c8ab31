/** Strict reading of the small JSON files of the key store and the journal. */
import { readFile } from 'node:fs/promises'
import { KeyStoreCorruptError } from '../errors.ts'
import { WRAP_SCHEMES, type WrappedKey, type WrapScheme } from '../types.ts'

/** Largest store or journal file we read; anything bigger is corrupt. */
export const MAX_FILE_BYTES = 1 << 20

export type JsonObject = Record<string, unknown>

/**
 * Reads and parses a JSON object file; `undefined` if it does not exist. Files larger than
 * `maxBytes` (default {@link MAX_FILE_BYTES}) are corrupt.
 */
export async function readJsonFile(
  path: string,
  maxBytes = MAX_FILE_BYTES,
): Promise<JsonObject | undefined> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (bytes.length > maxBytes) corrupt(path, 'too-large', { size: bytes.length })
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    corrupt(path, 'not-json', { size: bytes.length }, cause)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    corrupt(path, 'not-object')
  }
  return value as JsonObject
}

export function corrupt(
  file: string,
  reason: string,
  extra: Record<string, unknown> = {},
  cause?: unknown,
): never {
  throw new KeyStoreCorruptError('A key store file is corrupt', {
    details: { file, reason, ...extra },
    hint: 'Restore the file from a backup, or run recovery with the paper mnemonic.',
    cause,
  })
}

/** Checks that `obj` has exactly these keys (optional ones may be absent). */
export function checkKeys(
  file: string,
  obj: JsonObject,
  required: readonly string[],
  optional: readonly string[] = [],
): void {
  for (const k of required) if (!(k in obj)) corrupt(file, 'missing-field', { field: k })
  for (const k of Object.keys(obj)) {
    if (!required.includes(k) && !optional.includes(k)) corrupt(file, 'unknown-field', { field: k })
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Decodes canonical base64, or reports the file corrupt. */
export function decodeBase64(file: string, field: string, value: unknown): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) corrupt(file, 'bad-base64', { field })
  const bytes = Buffer.from(value, 'base64')
  if (bytes.toString('base64') !== value) corrupt(file, 'bad-base64', { field })
  return new Uint8Array(bytes)
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

export function checkDate(file: string, field: string, value: unknown): string {
  if (typeof value !== 'string' || !ISO_DATE.test(value) || Number.isNaN(Date.parse(value))) {
    corrupt(file, 'bad-date', { field })
  }
  return value
}

/** Longest wrapped-key ciphertext a file may hold. */
export const MAX_CIPHERTEXT = 4096

/** Parses one `{ scheme, keyId, ciphertext(base64) }` object, or reports the file corrupt. */
export function parseWrappedKey(file: string, field: string, item: unknown): WrappedKey {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    corrupt(file, 'bad-field', { field })
  }
  const w = item as JsonObject
  checkKeys(file, w, ['scheme', 'keyId', 'ciphertext'])
  if (!WRAP_SCHEMES.includes(w.scheme as WrapScheme)) corrupt(file, 'unknown-scheme', { field })
  if (typeof w.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(w.keyId)) {
    corrupt(file, 'bad-field', { field })
  }
  const ciphertext = decodeBase64(file, field, w.ciphertext)
  if (ciphertext.length === 0 || ciphertext.length > MAX_CIPHERTEXT) {
    corrupt(file, 'bad-field', { field })
  }
  return { scheme: w.scheme as WrapScheme, keyId: w.keyId, ciphertext }
}

export function encodeWrappedKey(w: WrappedKey): JsonObject {
  return {
    scheme: w.scheme,
    keyId: w.keyId,
    ciphertext: Buffer.from(w.ciphertext).toString('base64'),
  }
}
