/**
 * A folder of files named by CID, laid out as `blockstore-fs` lays out blocks (`NextToLast`
 * sharding: `<root>/<last two base32 characters>/<base32 multihash>.data`), so a data folder
 * written by `blockstore-fs` reads here and back. The filestore's copies and its reference
 * entries are two such folders.
 *
 * Why not `blockstore-fs` itself: its module loads a glob library (`it-glob`, `fast-glob`,
 * `micromatch`, ~80 modules, ~45 ms of every `pi-node seal` and every node start on a Pi-class
 * box) for `getAll` alone, and its writes go through `steno` (a `mkdir` per write, a temp name
 * per key: two processes writing one key share it). Here a file is written under a temp name of
 * its own and renamed; listing is two `readdir` levels (ADR 0063).
 */
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, renameSync, writeSync } from 'node:fs'
import { access, constants, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { NextToLast } from 'blockstore-fs/sharding'
import type { CID } from 'multiformats/cid'

/** The error names the blockstores use (`interface-store`'s). */
class PutFailedError extends Error {
  override name = 'PutFailedError'
}
class DeleteFailedError extends Error {
  override name = 'DeleteFailedError'
}

/**
 * A temporary file older than this is a writer's leftover (a process killed mid-write): a live
 * writer holds one for the time of one block's write.
 */
export const TEMP_FILE_MAX_AGE_MS = 60 * 60 * 1000

/** Names of temporary files: this module's (`<name>.data.<pid>-<n>-<hex>.tmp`), and steno's (`.<name>.data.tmp`). */
const TEMP_NAME = /\.data\.(?:\d+-\d+-[0-9a-f]+\.)?tmp$/

const sharding = new NextToLast()

/** An error of a file-system call that says the file (or its folder) is not there. */
export const isMissing = (err: unknown) => (err as NodeJS.ErrnoException)?.code === 'ENOENT'

/**
 * Fault injection for tests (not exported by the package): runs between a temp file's write and
 * its rename, where a sweep can take a live writer's file.
 */
export const shardFolderFaults: { beforeRename?: ((temp: string) => Promise<void>) | undefined } =
  {}

/** Temporary files written in this process, numbered (with a random part: see `writeWhole`). */
let tempFiles = 0

/**
 * `bytes` written into a new file (`wx`: never over another): open, one write, close. `writeFile`
 * writes in 512 KiB parts: two writes per 1 MiB block, each a round trip through libuv's thread
 * pool (ADR 0061). `mode` as `open`'s (the umask applies).
 */
export async function writeNew(path: string, bytes: Uint8Array, mode?: number): Promise<void> {
  const file = await open(path, 'wx', mode)
  try {
    let written = 0
    while (written < bytes.byteLength) {
      const { bytesWritten } = await file.write(bytes, written, bytes.byteLength - written)
      if (bytesWritten === 0) throw new Error('the file system took no bytes')
      written += bytesWritten
    }
  } finally {
    await file.close()
  }
}

/**
 * Files up to this size are written with synchronous calls on the calling thread: four short
 * system calls cost less than four thread-pool round trips, which were most of a 1 GiB add's
 * 1 024 reference entries (a few hundred bytes each; ADR 0063, amended). A small block copy (a
 * tiny file's one leaf, a small dag-pb node) goes the same way. The price: a disk that hangs
 * (a stalled SD card, a hard NFS mount) holds the whole process, not one pool thread.
 */
const SMALL_FILE = 1024

/** `writeNew` on the calling thread, for a small file. */
function writeNewSync(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'wx')
  try {
    let written = 0
    while (written < bytes.byteLength) {
      const n = writeSync(fd, bytes, written, bytes.byteLength - written)
      if (n === 0) throw new Error('the file system took no bytes')
      written += n
    }
  } finally {
    closeSync(fd)
  }
}

export class ShardFolder {
  readonly root: string
  /** Shard folders known to exist (made or written into through this object). */
  readonly #shards = new Set<string>()

  constructor(root: string) {
    this.root = root
  }

  /** The file of `key` and its shard folder. */
  paths(key: CID): { folder: string; file: string } {
    const { dir, file } = sharding.encode(key)
    const folder = join(this.root, dir)
    return { folder, file: join(folder, file) }
  }

  /**
   * Makes the folder if it is missing, and checks that this process can write to it (as
   * `blockstore-fs` did: a read-only data folder fails the node's start, not its first put).
   */
  async open(): Promise<void> {
    await mkdir(this.root, { recursive: true })
    await access(this.root, constants.W_OK)
  }

  /**
   * `bytes` as the file of `key`, whole or not at all: written into a temporary file of its own (a
   * crash mid-write leaves only that file, which no read looks at and `keys` does not list), then
   * renamed to the key's name. A shard folder is made once per object: four file-system calls a
   * write (open, write, close, rename) where `blockstore-fs` made five, through `steno`; for a
   * file of at most {@link SMALL_FILE} bytes they are made on the calling thread.
   * @throws {PutFailedError} with the file system's message.
   */
  async writeWhole(key: CID, bytes: Uint8Array): Promise<void> {
    const { folder, file } = this.paths(key)
    // random as well as numbered: two processes of one pid (containers sharing a data folder)
    // must never write, or remove, each other's temporary file
    const temp = `${file}.${process.pid}-${tempFiles++}-${randomBytes(6).toString('hex')}.tmp`
    try {
      // a shard folder is made once per store opened (a fresh data folder has none of them)
      if (!this.#shards.has(folder)) await this.#makeShard(folder)
      const written = async () => {
        if (bytes.byteLength <= SMALL_FILE) {
          try {
            writeNewSync(temp, bytes)
          } catch (err) {
            // the folder was removed since (by hand): made again, written again
            if (!isMissing(err)) throw err
            await this.#makeShard(folder)
            writeNewSync(temp, bytes)
          }
          await shardFolderFaults.beforeRename?.(temp)
          renameSync(temp, file)
          return
        }
        await writeNew(temp, bytes).catch(async (err) => {
          if (!isMissing(err)) throw err
          await this.#makeShard(folder)
          await writeNew(temp, bytes)
        })
        await shardFolderFaults.beforeRename?.(temp)
        await rename(temp, file)
      }
      // the temp file gone before its rename (a sweep that took it for a leftover: a clock that
      // jumped, a writer paused for an hour): written once more, the bytes are still here
      await written().catch((err) => {
        if (!isMissing(err)) throw err
        return written()
      })
    } catch (cause) {
      // never another writer's file: `writeNew` creates exclusively, so EEXIST left ours unmade
      if ((cause as NodeJS.ErrnoException)?.code !== 'EEXIST') await unlink(temp).catch(() => {})
      throw new PutFailedError(`Cannot write block ${key}: ${(cause as Error).message}`)
    }
  }

  async #makeShard(folder: string): Promise<void> {
    await mkdir(folder, { recursive: true })
    this.#shards.add(folder)
  }

  /**
   * Removes the file of `key`; a missing one is not an error.
   * @throws {DeleteFailedError} with the file system's message.
   */
  async remove(key: CID): Promise<void> {
    try {
      await unlink(this.paths(key).file)
    } catch (err) {
      if (isMissing(err)) return
      throw new DeleteFailedError(`Cannot delete block ${key}: ${(err as Error).message}`)
    }
  }

  /**
   * Every key with a file here, as `blockstore-fs`'s `getAll` names them (the multihash read back
   * as a CID: version 0 for SHA-256), with its file's path. Names that are not a key's (temporary
   * files, anything put there by hand) are skipped.
   */
  async *keys(options?: { signal?: AbortSignal }): AsyncGenerator<{ cid: CID; file: string }> {
    for (const shard of await entriesOf(this.root)) {
      if (!shard.isDirectory()) continue
      const folder = join(this.root, shard.name)
      for (const entry of await entriesOf(folder)) {
        options?.signal?.throwIfAborted()
        if (!entry.isFile() || !entry.name.endsWith(sharding.extension)) continue
        let cid: CID
        try {
          cid = sharding.decode(entry.name)
        } catch {
          continue
        }
        yield { cid, file: join(folder, entry.name) }
      }
    }
  }

  /**
   * Removes the temporary files writers left behind (a process killed mid-write) that are older
   * than `olderThanMs` (default {@link TEMP_FILE_MAX_AGE_MS}): a younger one may be another live
   * process's write in progress. Returns how many were removed.
   */
  async sweep(olderThanMs: number = TEMP_FILE_MAX_AGE_MS): Promise<number> {
    const before = Date.now() - olderThanMs
    let removed = 0
    for (const shard of await entriesOf(this.root)) {
      if (!shard.isDirectory()) continue
      const folder = join(this.root, shard.name)
      for (const entry of await entriesOf(folder)) {
        if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue
        const path = join(folder, entry.name)
        const info = await stat(path).catch(() => undefined)
        if (info === undefined || info.mtimeMs > before) continue
        const gone = await unlink(path).then(
          () => true,
          () => false,
        )
        if (gone) removed++
      }
    }
    return removed
  }
}

/** A folder's entries; none if it is not there (removed meanwhile). */
async function entriesOf(folder: string) {
  try {
    return await readdir(folder, { withFileTypes: true })
  } catch (err) {
    if (isMissing(err)) return []
    throw err
  }
}
