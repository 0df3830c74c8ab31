/**
 * The files a data folder's referenced blocks are read from, kept open while blocks are read
 * from them (ADR 0061). A node serving a capsule from references opened, `fstat`ed and closed
 * the capsule file around every 1 MiB block it read: three of its five file-system calls per
 * block, each a round trip through libuv's thread pool that the event loop pays for. A file is
 * now opened once and read by position, and closed once no block was read from it for
 * `OPEN_FILE_IDLE_MS` (or when the store closes).
 *
 * The path is still looked up (`stat`) for every read, so nothing a reader sees changes: a file
 * removed since is absent (`ENOENT`), a file replaced by another one (another inode at the path)
 * is opened anew, and the size and modification time a block's stamp is checked against are
 * those of the file at the path.
 */
import { constants, type Stats } from 'node:fs'
import { type FileHandle, open, stat } from 'node:fs/promises'

/** An open file is closed after this long with no block read from it. */
export const OPEN_FILE_IDLE_MS = 2_000

/** Files kept open at most (a node serving many capsules at once opens the others per read). */
export const OPEN_FILES_KEPT = 16

interface OpenFile {
  /** The handle, and the identity of the file it reads (a path may name another file since). */
  ready: Promise<{ handle: FileHandle; dev: number; ino: number }>
  /** Reads in progress: the file is closed only once they are done. */
  readers: number
  /** No longer handed out: closed when its last read is done. */
  dropped: boolean
  closed: boolean
  idle?: NodeJS.Timeout | undefined
}

/** A file opened for a read: its handle and its stats now; `release` once the read is done. */
export interface FileLease {
  handle: FileHandle
  stats: Stats
  release(): void
}

export class OpenFiles {
  /** Files open (or being opened) by path, least recently used first. */
  readonly #files = new Map<string, OpenFile>()

  /**
   * The file at `path` now, open, and its stats (`looked`: a `stat` of the path taken in this
   * same turn of the event loop, not taken again).
   * @throws the file system's error (`ENOENT`: the file is gone).
   */
  async lease(path: string, looked?: Stats): Promise<FileLease> {
    const stats = looked ?? (await stat(path))
    const known = this.#files.get(path)
    if (known !== undefined) {
      // most recently used last
      this.#files.delete(path)
      this.#files.set(path, known)
      const lease = await this.#take(path, known, stats, false)
      if (lease) return lease
      // the path names another file now (replaced): that one is opened
      this.#drop(path, known)
    }
    return (await this.#take(path, this.#open(path), stats, true)) as FileLease
  }

  /** Closes every file (a read in progress finishes first). */
  async close(): Promise<void> {
    const files = [...this.#files]
    await Promise.all(files.map(([path, file]) => this.#drop(path, file)))
  }

  /**
   * A lease of `file` if it is the file `stats` describe; a file just opened (`fresh`) is taken
   * whatever it is, with its own stats if the path was replaced between the `stat` and the `open`.
   */
  async #take(
    path: string,
    file: OpenFile,
    stats: Stats,
    fresh: boolean,
  ): Promise<FileLease | undefined> {
    file.readers++
    clearTimeout(file.idle)
    file.idle = undefined
    let released = false
    const release = () => {
      if (released) return
      released = true
      file.readers--
      if (file.readers === 0) this.#idle(path, file)
    }
    try {
      const { handle, dev, ino } = await file.ready
      if (dev === stats.dev && ino === stats.ino) return { handle, stats, release }
      if (!fresh) {
        release()
        return undefined
      }
      return { handle, stats: await handle.stat(), release }
    } catch (err) {
      release()
      throw err
    }
  }

  #open(path: string): OpenFile {
    // O_NONBLOCK: a FIFO swapped in at the path (after its `stat`) must not hold a thread-pool
    // thread, and every later read of the path, in an open that never returns (review). It
    // changes nothing for a regular file, and anything else is refused as absent.
    const ready = open(path, constants.O_RDONLY | constants.O_NONBLOCK).then(async (handle) => {
      try {
        const info = await handle.stat()
        if (!info.isFile()) throw new Error(`${path} is not a regular file`)
        const { dev, ino } = info
        return { handle, dev, ino }
      } catch (err) {
        await handle.close().catch(() => {})
        throw err
      }
    })
    const file: OpenFile = { ready, readers: 0, dropped: false, closed: false }
    ready.catch(() => this.#drop(path, file))
    this.#files.set(path, file)
    // the least recently used beyond the few kept are closed once not read
    for (const [oldest, other] of this.#files) {
      if (this.#files.size <= OPEN_FILES_KEPT) break
      void this.#drop(oldest, other)
    }
    return file
  }

  /** Once nobody reads `file`: closed after `OPEN_FILE_IDLE_MS`, or now if dropped. */
  #idle(path: string, file: OpenFile): void {
    if (file.dropped) {
      void this.#close(file)
      return
    }
    file.idle = setTimeout(() => this.#drop(path, file), OPEN_FILE_IDLE_MS)
    file.idle.unref?.()
  }

  /** No longer handed out; closed now if nobody reads it, else when its last read is done. */
  #drop(path: string, file: OpenFile): Promise<void> {
    file.dropped = true
    clearTimeout(file.idle)
    file.idle = undefined
    if (this.#files.get(path) === file) this.#files.delete(path)
    return file.readers === 0 ? this.#close(file) : Promise.resolve()
  }

  async #close(file: OpenFile): Promise<void> {
    if (file.closed) return
    file.closed = true
    const opened = await file.ready.catch(() => undefined)
    await opened?.handle.close().catch(() => {})
  }
}
