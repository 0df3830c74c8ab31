/**
 * The key store: capsule id → wrapped data keys and metadata, one JSON file per capsule
 * (`<dir>/<capsuleId>.json`, mode 0600, directory 0700), each written atomically (temp file,
 * fsync, rename or link, fsync directory). Plain keys are never stored.
 *
 * File format, version 1:
 * ```json
 * { "version": 1, "capsuleId": "0x…", "createdAt": "…Z", "updatedAt": "…Z",
 *   "metadata": { "k": "v" },
 *   "wrappedKeys": [{ "scheme": "tpm2-rsa-oaep-sha256", "keyId": "<64 hex>", "ciphertext": "<base64>" }] }
 * ```
 *
 * Reads are cached in memory, each hit checked against one `stat` of the file (device,
 * inode, size, mtime and ctime in nanoseconds): every write replaces the file by rename or
 * link, so a write by this store, another store or another process is seen at once. `put`
 * and `delete` also drop the entry. Callers get copies, never the cached record.
 */
import { readdir, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError } from '@digicap/capsule-core/light'
import { KeyExistsError } from '../errors.ts'
import { WRAP_SCHEMES, type WrappedKey } from '../types.ts'
import { ensureDir, removeStaleTemps, syncDir, writeFileAtomic } from './fs-atomic.ts'
import { canonicalId } from './ids.ts'
import {
  checkDate,
  checkKeys,
  corrupt,
  encodeWrappedKey,
  type JsonObject,
  MAX_CIPHERTEXT,
  parseWrappedKey,
  readJsonFile,
} from './json-file.ts'

/** Most wrapped copies one record may hold. */
export const MAX_WRAPPED_KEYS = 16
/** Most metadata entries; keys and values are strings. */
export const MAX_METADATA_ENTRIES = 64
const MAX_METADATA_VALUE = 1024

export interface KeyRecord {
  capsuleId: string
  /** The data key wrapped to the sealer, and to the recovery key. */
  wrappedKeys: WrappedKey[]
  /** Non-secret facts about the capsule (CID, policy address, …). */
  metadata: Record<string, string>
  createdAt: string
  updatedAt: string
}

export interface PutKeyRecord {
  capsuleId: string
  wrappedKeys: readonly WrappedKey[]
  metadata?: Record<string, string>
}

export interface KeyStore {
  readonly dir: string
  /**
   * Stores a record. Refuses to overwrite unless `replace` (used by recovery).
   * @throws {KeyExistsError} if the capsule has a record and `replace` is not set.
   * @throws {InvalidArgumentError} for a malformed record.
   */
  put(record: PutKeyRecord, options?: { replace?: boolean }): Promise<KeyRecord>
  /**
   * @returns the record, or `undefined` if there is none.
   * @throws {KeyStoreCorruptError} if the file exists but is not a valid record.
   */
  get(capsuleId: string): Promise<KeyRecord | undefined>
  /** Capsule ids with a record, sorted. */
  list(): Promise<string[]>
  /** Deletes a record; `false` if there was none. */
  delete(capsuleId: string): Promise<boolean>
}

const SUFFIX = '.json'
/** Records kept in memory; the oldest read is dropped beyond it. */
const CACHE_ENTRIES = 4096

function copyRecord(r: KeyRecord): KeyRecord {
  return {
    capsuleId: r.capsuleId,
    wrappedKeys: r.wrappedKeys.map((w) => ({
      scheme: w.scheme,
      keyId: w.keyId,
      ciphertext: Uint8Array.from(w.ciphertext),
    })),
    metadata: { ...r.metadata },
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }
}

/** Identity of one version of a file: any atomic replace changes it. */
async function fileVersion(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file, { bigint: true })
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

function checkRecord(record: PutKeyRecord): void {
  if (!Array.isArray(record.wrappedKeys) || record.wrappedKeys.length === 0) {
    throw new InvalidArgumentError('wrappedKeys must be a non-empty array')
  }
  if (record.wrappedKeys.length > MAX_WRAPPED_KEYS) {
    throw new InvalidArgumentError('Too many wrapped keys', {
      details: { count: record.wrappedKeys.length, max: MAX_WRAPPED_KEYS },
    })
  }
  for (const w of record.wrappedKeys) {
    if (
      !WRAP_SCHEMES.includes(w?.scheme) ||
      typeof w.keyId !== 'string' ||
      !/^[0-9a-f]{64}$/.test(w.keyId) ||
      !(w.ciphertext instanceof Uint8Array) ||
      w.ciphertext.length === 0 ||
      w.ciphertext.length > MAX_CIPHERTEXT
    ) {
      throw new InvalidArgumentError('Malformed wrapped key', {
        details: { scheme: w?.scheme, length: w?.ciphertext?.length },
      })
    }
  }
  checkMetadata(record.metadata ?? {}, (field) => {
    throw new InvalidArgumentError('Malformed metadata', { details: { field } })
  })
}

function checkMetadata(value: unknown, fail: (field: string) => never): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('metadata')
  const entries = Object.entries(value as object)
  if (entries.length > MAX_METADATA_ENTRIES) fail('metadata')
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 128 || typeof v !== 'string' || v.length > MAX_METADATA_VALUE)
      fail(`metadata.${k.slice(0, 32)}`)
  }
  return { ...(value as Record<string, string>) }
}

function parseRecord(file: string, expectedId: string, obj: JsonObject): KeyRecord {
  checkKeys(file, obj, [
    'version',
    'capsuleId',
    'createdAt',
    'updatedAt',
    'metadata',
    'wrappedKeys',
  ])
  if (obj.version !== 1) corrupt(file, 'unknown-version', { version: obj.version })
  if (obj.capsuleId !== expectedId) corrupt(file, 'id-mismatch')
  const createdAt = checkDate(file, 'createdAt', obj.createdAt)
  const updatedAt = checkDate(file, 'updatedAt', obj.updatedAt)
  const metadata = checkMetadata(obj.metadata, (field) => corrupt(file, 'bad-field', { field }))
  const list = obj.wrappedKeys
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_WRAPPED_KEYS) {
    corrupt(file, 'bad-field', { field: 'wrappedKeys' })
  }
  const wrappedKeys = list.map((item: unknown, i) =>
    parseWrappedKey(file, `wrappedKeys[${i}]`, item),
  )
  return { capsuleId: expectedId, wrappedKeys, metadata, createdAt, updatedAt }
}

function serialize(record: KeyRecord): Uint8Array {
  return new TextEncoder().encode(
    `${JSON.stringify(
      {
        version: 1,
        capsuleId: record.capsuleId,
        createdAt: record.createdAt,
        updatedAt: record.updatedAt,
        metadata: record.metadata,
        wrappedKeys: record.wrappedKeys.map(encodeWrappedKey),
      },
      null,
      2,
    )}\n`,
  )
}

/**
 * Opens (creating if needed) a key store in `dir` and removes temp files a crash left.
 * Open one store per directory per process.
 *
 * @example
 * ```ts
 * const store = await createKeyStore('/var/lib/digicap/keys')
 * await store.put({ capsuleId, wrappedKeys: await wrapDataKey(dataKey, { sealer, recoveryPublicKey }) })
 * const record = await store.get(capsuleId)
 * ```
 */
export async function createKeyStore(dir: string): Promise<KeyStore> {
  await ensureDir(dir)
  await removeStaleTemps(dir)
  const pathOf = (id: string) => join(dir, `${id}${SUFFIX}`)

  const cache = new Map<string, { version: string; record: KeyRecord }>()

  async function get(capsuleId: string): Promise<KeyRecord | undefined> {
    const id = canonicalId('capsuleId', capsuleId)
    const file = pathOf(id)
    // The version is taken before the read: if the file changes in between, the cached
    // version is older than the content and the next `get` reads again.
    const version = await fileVersion(file)
    if (version === undefined) {
      cache.delete(id)
      return undefined
    }
    const hit = cache.get(id)
    if (hit !== undefined && hit.version === version) return copyRecord(hit.record)
    cache.delete(id)
    const obj = await readJsonFile(file)
    if (obj === undefined) return undefined
    const record = parseRecord(file, id, obj)
    cache.set(id, { version, record: copyRecord(record) })
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value as string)
    return record
  }

  return {
    dir,
    get,

    async put(input, options = {}) {
      const capsuleId = canonicalId('capsuleId', input?.capsuleId)
      checkRecord(input)
      const now = new Date().toISOString()
      const previous = options.replace ? await get(capsuleId) : undefined
      cache.delete(capsuleId)
      const record: KeyRecord = {
        capsuleId,
        wrappedKeys: input.wrappedKeys.map((w) => ({
          scheme: w.scheme,
          keyId: w.keyId,
          ciphertext: Uint8Array.from(w.ciphertext),
        })),
        metadata: { ...(input.metadata ?? {}) },
        createdAt: previous?.createdAt ?? now,
        updatedAt: now,
      }
      try {
        await writeFileAtomic(pathOf(capsuleId), serialize(record), {
          exclusive: !options.replace,
        })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new KeyExistsError('A key record for this capsule already exists', {
            details: { capsuleId },
            hint: 'Pass { replace: true } to overwrite it (recovery does).',
          })
        }
        throw err
      } finally {
        cache.delete(capsuleId)
      }
      return record
    },

    async list() {
      const names = await readdir(dir)
      return names
        .filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.'))
        .map((n) => n.slice(0, -SUFFIX.length))
        .sort()
    },

    async delete(capsuleId) {
      const id = canonicalId('capsuleId', capsuleId)
      cache.delete(id)
      try {
        await unlink(pathOf(id))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw err
      }
      await syncDir(dir)
      return true
    },
  }
}
