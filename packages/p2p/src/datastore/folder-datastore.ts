/**
 * A node's on-disk datastore (helia's pins, the peer records kept between runs): one file per
 * key, laid out as `datastore-fs` lays them out (`/a/b/c` → `<root>/a/b/c.data`), so a data
 * folder written by `datastore-fs` reads here and back (ADR 0100).
 *
 * Why not `datastore-fs` itself: its module loads a glob library (`it-glob`, `fast-glob`,
 * `picomatch`, `braces`, `@nodelib/fs.*`: ~110 KB of every node start's bundle) for its queries
 * alone, and each query compiled a glob pattern and walked the tree through it; its writes go
 * through `steno` (a temp name per key: two writers of one key share it). Here a query is a
 * `readdir` walk under the prefix's folder, and a value is written into a temporary file of its
 * own and renamed over the key's, as the blockstore's shard folders do (ADR 0063).
 */
import { randomBytes } from 'node:crypto'
import { access, constants, mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { BaseDatastore } from 'datastore-core'
import { Key, type KeyQuery, type Pair, type Query } from 'interface-datastore'
import { DeleteFailedError, NotFoundError, OpenFailedError, PutFailedError } from 'interface-store'
import { isMissing, writeNew } from '../filestore/shard-folder.ts'

/** The file extension of a value (`datastore-fs`'s default). */
const EXTENSION = '.data'

/** Temporary files written in this process, numbered (with a random part against other processes). */
let tempFiles = 0

/** What every call takes (`interface-store`'s options). */
type AbortOptions = { signal?: AbortSignal }

export class FolderDatastore extends BaseDatastore {
  /** The folder, absolute. */
  readonly path: string

  constructor(location: string) {
    super()
    this.path = resolve(location)
  }

  /**
   * Makes the folder if it is missing and checks that this process can write to it (as
   * `datastore-fs` did: a read-only data folder fails the node's start, not its first put).
   * @throws {OpenFailedError} with the file system's message.
   */
  async open(): Promise<void> {
    try {
      await mkdir(this.path, { recursive: true })
      await access(this.path, constants.W_OK)
    } catch (err) {
      throw new OpenFailedError(`Cannot open datastore ${this.path}: ${(err as Error).message}`)
    }
  }

  async close(): Promise<void> {}

  /**
   * The file of `key` (`datastore-fs`'s `_encode`). A key whose file would lie outside the folder
   * (`..` segments) has none: its put fails, it is never found.
   */
  file(key: Key): string {
    const file = join(this.path, `${key.toString()}${EXTENSION}`)
    if (!file.startsWith(`${this.path}${sep}`))
      throw new Error(`${key} names a file outside the datastore`)
    return file
  }

  /**
   * `value` as the value of `key`, whole or not at all: written into a temporary file of its own
   * (a name no query lists), then renamed over the key's file.
   * @throws {PutFailedError} with the file system's message.
   */
  override async put(key: Key, value: Uint8Array, options?: AbortOptions): Promise<Key> {
    options?.signal?.throwIfAborted()
    let temp: string | undefined
    try {
      const file = this.file(key)
      temp = `${file}.${process.pid}-${tempFiles++}-${randomBytes(6).toString('hex')}.tmp`
      const written = temp
      await writeNew(written, value, 0o600).catch(async (err) => {
        if (!isMissing(err)) throw err
        await mkdir(dirname(file), { recursive: true })
        await writeNew(written, value, 0o600)
      })
      await rename(written, file)
      return key
    } catch (err) {
      // never another writer's file: `writeNew` creates exclusively, so EEXIST left ours unmade
      if (temp !== undefined && (err as NodeJS.ErrnoException)?.code !== 'EEXIST')
        await unlink(temp).catch(() => {})
      throw new PutFailedError(`Cannot write ${key}: ${(err as Error).message}`)
    }
  }

  /** @throws {NotFoundError} when `key` has no value (or it cannot be read). */
  override async get(key: Key, options?: AbortOptions): Promise<Uint8Array> {
    options?.signal?.throwIfAborted()
    try {
      return await readFile(this.file(key))
    } catch (err) {
      throw new NotFoundError(`No value for ${key}: ${(err as Error).message}`)
    }
  }

  override async has(key: Key, options?: AbortOptions): Promise<boolean> {
    options?.signal?.throwIfAborted()
    return new Promise<string>((ok) => ok(this.file(key)))
      .then((file) => access(file))
      .then(
        () => true,
        () => false,
      )
  }

  /**
   * Removes the value of `key`; a missing one is not an error.
   * @throws {DeleteFailedError} with the file system's message.
   */
  override async delete(key: Key, options?: AbortOptions): Promise<void> {
    options?.signal?.throwIfAborted()
    let file: string
    try {
      file = this.file(key)
    } catch {
      return // no such file can exist
    }
    try {
      await unlink(file)
    } catch (err) {
      if (isMissing(err)) return
      throw new DeleteFailedError(`Cannot delete ${key}: ${(err as Error).message}`)
    }
  }

  /**
   * Every pair whose file lies under the prefix's folder (the base class keeps those whose key
   * starts with the prefix, then applies filters, orders, offset and limit). A file removed while
   * the query runs is skipped.
   */
  override async *_all(q: Query, options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const { key, file } of this.#files(q.prefix, options)) {
      try {
        const value = await readFile(file)
        options?.signal?.throwIfAborted()
        yield { key, value }
      } catch (err) {
        if (!isMissing(err)) throw err
      }
    }
  }

  override async *_allKeys(q: KeyQuery, options?: AbortOptions): AsyncGenerator<Key> {
    for await (const { key } of this.#files(q.prefix, options)) yield key
  }

  /**
   * The values' files under the folder a prefix names, depth first in name order, with their
   * keys. As `datastore-fs`'s glob (`<prefix>/**\/*.data`): names starting with a dot (hidden
   * files and folders) and names without the extension (temporary files) are not values; a
   * prefix that does not end at a folder's name (`/pi` of `/pins/…`) is walked from its folder.
   */
  async *#files(
    prefix: string | undefined,
    options?: AbortOptions,
  ): AsyncGenerator<{ key: Key; file: string }> {
    const trimmed = (prefix ?? '').replace(/^\/+/, '')
    const start = trimmed.endsWith('/') || trimmed === '' ? trimmed : dirname(`/${trimmed}`)
    const folders = [join(this.path, start)]
    for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
      options?.signal?.throwIfAborted()
      const entries = await readdir(folder, { withFileTypes: true }).catch((err) => {
        if (isMissing(err) || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR') return []
        throw err
      })
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const subfolders: string[] = []
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue
        const path = join(folder, entry.name)
        if (entry.isDirectory()) subfolders.push(path)
        else if (entry.isFile() && entry.name.endsWith(EXTENSION)) {
          const name = path.slice(this.path.length, -EXTENSION.length)
          yield { key: new Key(name.split(sep).join('/')), file: path }
        }
      }
      // depth first, the first folder by name next
      folders.push(...subfolders.reverse())
    }
  }
}
