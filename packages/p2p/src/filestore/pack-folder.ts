/**
 * The folder of reference packs (`reference-pack.ts`): one pack per referenced file, named by
 * the file's path, written whole or not at all (a temporary file of its own, renamed). Every pack
 * is held in memory once read (44 bytes a block: 176 KiB for 4 GiB of capsules); packs another
 * process writes are read when the folder changes, looked at most every
 * {@link PACK_RECHECK_MS}.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, type Stats, statSync } from 'node:fs'
import { mkdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { FileReference } from './file-reference.ts'
import {
  decodeReferencePack,
  encodeReferencePack,
  MAX_PACK_BYTES,
  type PackEntry,
  type ReferencePack,
} from './reference-pack.ts'
import { isMissing, writeNew } from './shard-folder.ts'

/**
 * How often a lookup that found nothing may look at the folder again: a pack another process
 * (`pi-node seal` while `serve` runs) writes is seen within this time. A miss is the usual case
 * on a fetching node (the blocks it fetches are copies), so not one `stat` per block.
 */
export const PACK_RECHECK_MS = 100

/** How recent a folder's mtime must be to be looked at again even when unchanged. */
const RACY_MS = 2000

const PACK_NAME = /^[0-9a-f]{32}\.pack$/
/** Temporary files of this module: `<name>.pack.<pid>-<n>-<hex>.tmp`. */
const TEMP_NAME = /\.pack\.\d+-\d+-[0-9a-f]+\.tmp$/

let tempFiles = 0

/** Fault injection for tests (not exported by the package): runs between a pack's write and its rename. */
export const packFolderFaults: { beforeRename?: ((temp: string) => Promise<void>) | undefined } = {}

interface Held {
  /** `undefined`: the file is not a pack (damaged, or not ours); not read again until it changes. */
  pack: ReferencePack | undefined
  stats: Stats
}

const sameFile = (a: Stats, b: Stats) =>
  a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs

export class PackFolder {
  readonly root: string
  readonly #held = new Map<string, Held>()
  /** The folder's modification time when last read (`-1`: never, or read again next time). */
  #folderMtime = -1
  /** When (wall clock, as mtimes are) the folder was last listed. */
  #listedAt = Number.NEGATIVE_INFINITY
  /** When (monotonic: a clock stepped back must not stop the lookups) it was last looked at. */
  #lookedAt = Number.NEGATIVE_INFINITY
  /** This process's writes and removes, one at a time: each rewrites a pack it read. */
  #mutating: Promise<unknown> = Promise.resolve()

  constructor(root: string) {
    this.root = root
  }

  /** The pack file of the file at `path` (absolute). */
  fileOf(path: string): string {
    return join(this.root, `${createHash('sha256').update(path).digest('hex').slice(0, 32)}.pack`)
  }

  /**
   * The reference of the block whose SHA-256 is `digest`: from the newest pack holding it when
   * several do (the same bytes added from two paths), as the last add's entry won before packs.
   */
  find(digest: Uint8Array): FileReference | undefined {
    const found = this.#find(digest)
    if (found || !this.#refresh()) return found
    return this.#find(digest)
  }

  #find(digest: Uint8Array): FileReference | undefined {
    let found: FileReference | undefined
    let newest = Number.NEGATIVE_INFINITY
    for (const { pack, stats } of this.#held.values()) {
      const ref = pack?.find(digest)
      if (ref && stats.mtimeMs > newest) {
        found = ref
        newest = stats.mtimeMs
      }
    }
    return found
  }

  /**
   * Reads the folder again if it changed since (at most every {@link PACK_RECHECK_MS} unless
   * `now`). Returns whether it did. On the calling thread: a `stat`, and when the folder changed
   * a `readdir`, a `stat` per pack and a read of each new one (rare: once per pack written).
   */
  #refresh(now = false): boolean {
    const looked = performance.now()
    if (!now && looked - this.#lookedAt < PACK_RECHECK_MS) return false
    this.#lookedAt = looked
    const t = Date.now()
    let folder: Stats
    try {
      folder = statSync(this.root)
    } catch {
      const had = this.#held.size > 0
      this.#held.clear()
      this.#folderMtime = -1
      return had
    }
    // A listing made within seconds of the folder's last change is made again even if the mtime
    // has not moved: on a file system with coarse timestamps a change in the same tick as the
    // listing (a pack renamed in) leaves it as it was (git's "racy" index entries, the same rule).
    if (folder.mtimeMs === this.#folderMtime && this.#listedAt - folder.mtimeMs > RACY_MS)
      return false
    this.#folderMtime = folder.mtimeMs
    this.#listedAt = t
    let names: string[]
    try {
      names = readdirSync(this.root).filter((n) => PACK_NAME.test(n))
    } catch {
      this.#folderMtime = -1
      return false
    }
    const listed = new Set(names)
    for (const name of this.#held.keys()) if (!listed.has(name)) this.#held.delete(name)
    for (const name of names) {
      const file = join(this.root, name)
      try {
        const stats = statSync(file)
        const held = this.#held.get(name)
        if (held && sameFile(held.stats, stats)) continue
        // Only a regular file at most a pack's size is read: a FIFO would block this thread for
        // good, a link to /dev/zero or a file put there by hand could be gigabytes.
        const pack =
          stats.isFile() && stats.size <= MAX_PACK_BYTES
            ? decodeReferencePack(readFileSync(file))
            : undefined
        this.#held.set(name, { pack, stats })
      } catch (err) {
        if (isMissing(err)) {
          this.#held.delete(name)
        } else {
          // EMFILE, EIO…: what was held stays, and the folder is read again at the next look
          this.#folderMtime = -1
        }
      }
    }
    return true
  }

  /**
   * Writes the pack of `entries` in the file at `path` (replacing that file's pack, if any) and
   * holds it. A crash leaves the old pack or none, never part of one.
   */
  async write(
    path: string,
    stamp: FileReference['stamp'],
    entries: readonly PackEntry[],
  ): Promise<void> {
    const bytes = encodeReferencePack(path, stamp, entries)
    await this.#serially(() => this.#writeWhole(this.fileOf(path), bytes))
  }

  /**
   * Runs this process's pack mutations one after another: a remove reads a held pack and writes
   * it back without one block, and two at once (or one beside a write of the same file) would
   * each write their own version, one undoing the other. Between processes nothing orders them
   * (ADR 0102, consequences).
   */
  #serially<T>(mutate: () => Promise<T>): Promise<T> {
    const done = this.#mutating.then(mutate, mutate)
    this.#mutating = done.catch(() => {})
    return done
  }

  async #writeWhole(file: string, bytes: Uint8Array): Promise<void> {
    await mkdir(this.root, { recursive: true })
    // random as well as numbered: two processes of one pid (containers) never share a temp name
    const temp = `${file}.${process.pid}-${tempFiles++}-${randomBytes(6).toString('hex')}.tmp`
    const written = async (): Promise<Stats> => {
      await writeNew(temp, bytes)
      // the temp file's own stats (a rename keeps them): after the rename the name could already
      // be another writer's pack, which must not pass for ours
      const own = await stat(temp)
      await packFolderFaults.beforeRename?.(temp)
      await rename(temp, file)
      return own
    }
    let stats: Stats
    try {
      // the temp file gone before its rename (a sweep that took it for a leftover: a clock that
      // jumped, a writer paused for an hour): written once more, as the copies' shards do
      stats = await written().catch((err) => {
        if (!isMissing(err)) throw err
        return written()
      })
    } catch (err) {
      await unlink(temp).catch(() => {})
      throw err
    }
    const pack = decodeReferencePack(bytes)
    const name = file.slice(this.root.length + 1)
    if (pack) this.#held.set(name, { pack, stats })
  }

  /**
   * Removes the blocks whose SHA-256 digests are `digests` from every pack holding any of them:
   * each such pack written again once, without them (removed when none is left).
   */
  removeMany(digests: readonly Uint8Array[]): Promise<void> {
    return this.#serially(() => this.#removeMany(digests))
  }

  async #removeMany(digests: readonly Uint8Array[]): Promise<void> {
    this.#refresh(true)
    for (const [name, { pack }] of [...this.#held]) {
      const held = pack ? digests.filter((d) => pack.find(d)) : []
      if (!pack || held.length === 0) continue
      const gone = new Set(held.map((d) => Buffer.from(d).toString('hex')))
      const rest = [...pack.entries()].filter(
        (e) => !gone.has(Buffer.from(e.digest).toString('hex')),
      )
      const file = join(this.root, name)
      if (rest.length === 0) {
        await unlink(file).catch((err) => {
          if (!isMissing(err)) throw err
        })
        this.#held.delete(name)
      } else {
        await this.#writeWhole(file, encodeReferencePack(pack.path, pack.stamp, rest))
      }
    }
  }

  /** Every entry of every pack (the folder read again first). */
  *entries(): Generator<PackEntry> {
    this.#refresh(true)
    for (const { pack } of [...this.#held.values()]) if (pack) yield* pack.entries()
  }

  /**
   * Removes the temporary files writers killed mid-write left, once older than `olderThanMs`.
   * Returns how many.
   */
  async sweep(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs
    let names: string[]
    try {
      names = readdirSync(this.root)
    } catch {
      return 0
    }
    let removed = 0
    for (const name of names) {
      if (!TEMP_NAME.test(name)) continue
      const file = join(this.root, name)
      const info = await stat(file).catch(() => undefined)
      if (info === undefined || info.mtimeMs > before) continue
      if (
        await unlink(file).then(
          () => true,
          () => false,
        )
      )
        removed++
    }
    return removed
  }
}
