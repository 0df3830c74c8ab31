import { closeSync, constants, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs'
import { lstat, mkdtemp, open, readdir, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** What a workspace's `dispose()` cleaned; emitted as the `after-cleanup` lifecycle event. */
export interface CleanupReport {
  /** Temp files removed (each overwritten with zeros first). */
  readonly filesRemoved: number
  /** Temp directories removed, the roots included. */
  readonly dirsRemoved: number
  /** Bytes of temp-file content overwritten with zeros before unlinking. */
  readonly fileBytesOverwritten: number
  /** Buffers zeroed: tracked host buffers plus buffers zeroed inside sandbox workers. */
  readonly buffersZeroed: number
  /** Bytes zeroed in those buffers. */
  readonly bytesZeroed: number
  /** Handles (workers, file descriptors) closed. */
  readonly handlesClosed: number
  /** Paths of the removed temp roots (for the audit log; they no longer exist). */
  readonly tempRoots: readonly string[]
  /** Clean-up steps that failed (message only); empty when everything was cleaned. */
  readonly failures: readonly string[]
}

export interface RunWorkspaceInit {
  /** Where temp directories are made (default `os.tmpdir()`; a tmpfs keeps payloads off disk). */
  readonly tmpRoot?: string | undefined
  /**
   * Largest file overwritten with zeros before removal (default 256 MiB). A larger file
   * (which the sandboxes' write metering prevents) is removed without overwriting, and
   * `failures` says so: clean-up never spends unbounded time on a huge or sparse file. Not
   * for a `tempDir` made with `overwriteAll` (an image run's scratch without a tmpfs).
   */
  readonly maxOverwriteBytes?: number | undefined
}

/**
 * Tracks everything a run leaves behind — temp directories, key and plaintext buffers, open
 * handles — so one `dispose()` removes it all and says what it removed.
 *
 * @example
 * ```ts
 * const ws = createRunWorkspace()
 * ws.trackBuffer(dataKey)
 * const dir = await ws.tempDir('wasi-')
 * // … run …
 * const report = await ws.dispose() // { filesRemoved, dirsRemoved, buffersZeroed, … }
 * ```
 */
export interface RunWorkspace {
  /**
   * Make a fresh 0700 temp directory that `dispose()` removes, under the workspace root or
   * under `root` when given (e.g. a tmpfs for decrypted data). `overwriteAll`: every regular
   * file in it is overwritten whatever its size (`maxOverwriteBytes` does not apply): for a
   * directory of plaintext whose sizes something else bounds (an image run's scratch).
   */
  tempDir(
    prefix: string,
    root?: string,
    options?: { readonly overwriteAll?: boolean | undefined },
  ): Promise<string>
  /** Zero this buffer on `dispose()` (key material, plaintext). */
  trackBuffer(buffer: Uint8Array): void
  /**
   * Overwrite this file with zeros and remove it on `dispose()`, whatever its size (the run's
   * plaintext file: its size is the header's, not the program's; `maxOverwriteBytes` does not
   * apply). Removed first, before the temp directories. `memoryFs`: the file is on a tmpfs or
   * ramfs (the open checked): it is not fsynced (its pages are memory, there is no disk to
   * reach), and one of up to 4 MiB is wiped with synchronous calls (no thread-pool round trips).
   * `overwrite: false`: a file anyone can read already (the fetched ciphertext, public by its
   * CID) is removed without overwriting, whatever its size, and that is no failure.
   */
  trackFile(
    path: string,
    options?: {
      readonly memoryFs?: boolean | undefined
      readonly overwrite?: boolean | undefined
    },
  ): void
  /** Close this handle on `dispose()` (idempotent closers; errors are reported, not thrown). */
  trackHandle(close: () => unknown): void
  /** Count buffers zeroed elsewhere (e.g. inside a sandbox worker before it exited). */
  recordZeroed(buffers: number, bytes: number): void
  /** True once `dispose()` has run. */
  readonly disposed: boolean
  /** Clean up everything tracked. Safe to call twice (the second call reports nothing). */
  dispose(): Promise<CleanupReport>
}

export function createRunWorkspace(init: RunWorkspaceInit = {}): RunWorkspace {
  const root = init.tmpRoot ?? tmpdir()
  const maxOverwrite = init.maxOverwriteBytes ?? 256 * 1024 * 1024
  const dirs: { dir: string; maxOverwrite: number }[] = []
  const buffers: Uint8Array[] = []
  const files: { path: string; memoryFs: boolean; overwrite: boolean }[] = []
  const handles: Array<() => unknown> = []
  let remoteBuffers = 0
  let remoteBytes = 0
  let disposed = false

  return {
    get disposed() {
      return disposed
    },
    async tempDir(prefix, under, options) {
      const dir = await mkdtemp(join(under ?? root, `digicap-${prefix}`))
      const all = options?.overwriteAll === true
      dirs.push({ dir, maxOverwrite: all ? Number.POSITIVE_INFINITY : maxOverwrite })
      return dir
    },
    trackBuffer(buffer) {
      buffers.push(buffer)
    },
    trackFile(path, options) {
      files.push({
        path,
        memoryFs: options?.memoryFs === true,
        overwrite: options?.overwrite !== false,
      })
    },
    trackHandle(close) {
      handles.push(close)
    },
    recordZeroed(n, bytes) {
      remoteBuffers += n
      remoteBytes += bytes
    },
    async dispose() {
      disposed = true
      const failures: string[] = []
      let handlesClosed = 0
      for (const close of handles.splice(0)) {
        try {
          await close()
          handlesClosed++
        } catch (err) {
          failures.push(`handle: ${(err as Error).message}`)
        }
      }
      let buffersZeroed = remoteBuffers
      let bytesZeroed = remoteBytes
      remoteBuffers = 0
      remoteBytes = 0
      for (const b of buffers.splice(0)) {
        if (b.byteLength === 0 && b.buffer.byteLength === 0) continue // detached or empty
        b.fill(0)
        buffersZeroed++
        bytesZeroed += b.byteLength
      }
      const counts = { files: 0, dirs: 0, bytes: 0 }
      for (const file of files.splice(0)) {
        try {
          if (!file.overwrite) {
            await unlink(file.path)
            counts.files++
          } else if (file.memoryFs) await wipeMemoryFile(file.path, counts)
          else await wipeFile(file.path, counts, Number.POSITIVE_INFINITY, failures)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
          failures.push(`file: ${(err as Error).message}`)
          await rm(file.path, { force: true }).catch(() => {})
        }
      }
      const tempRoots: string[] = []
      for (const { dir, maxOverwrite } of dirs.splice(0)) {
        tempRoots.push(dir)
        try {
          await wipeTree(dir, counts, maxOverwrite, failures)
        } catch (err) {
          failures.push(`temp dir: ${(err as Error).message}`)
          await rm(dir, { recursive: true, force: true }).catch(() => {})
        }
      }
      return {
        filesRemoved: counts.files,
        dirsRemoved: counts.dirs,
        fileBytesOverwritten: counts.bytes,
        buffersZeroed,
        bytesZeroed,
        handlesClosed,
        tempRoots,
        failures,
      }
    },
  }
}

const ZEROS = new Uint8Array(1024 * 1024)
/** One `writev` of the same zero buffer 16 times: 16 MiB a call, 1 MiB of memory. */
const ZERO_RUN = 16
/** Zero runs written at a time. */
const WIPE_LANES = 2
/** Memory-fs files up to this size are wiped with synchronous calls. */
const SYNC_WIPE_MAX = 4 * 1024 * 1024

/** Overwrite every regular file with zeros, then remove the tree, counting what went. */
async function wipeTree(
  dir: string,
  counts: { files: number; dirs: number; bytes: number },
  maxOverwrite: number,
  failures: string[],
): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true })
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) {
      await wipeTree(p, counts, maxOverwrite, failures)
      continue
    }
    await wipeFile(p, counts, maxOverwrite, failures, e.isFile())
  }
  await rm(dir, { recursive: true, force: true })
  counts.dirs++
}

/** Overwrite a regular file with zeros (up to `maxOverwrite` bytes), then remove it. */
async function wipeFile(
  p: string,
  counts: { files: number; bytes: number },
  maxOverwrite: number,
  failures: string[],
  regular = true,
): Promise<void> {
  const st = regular ? await lstat(p) : undefined
  if (st && !st.isFile()) {
    // symlinks, fifos and the like are removed, never followed
  } else if (st && st.size > maxOverwrite) {
    failures.push(`file of ${st.size} bytes removed without overwriting`)
  } else if (st) {
    await overwrite(p, st.size, true)
    counts.bytes += st.size
  }
  await rm(p, { force: true })
  counts.files++
}

/**
 * A file on a tmpfs/ramfs (the run's plaintext): overwritten with zeros and removed, without
 * fsync (memory pages, no disk); up to SYNC_WIPE_MAX with synchronous calls, which on a
 * memory file system take microseconds and spare the thread pool's round trips.
 */
async function wipeMemoryFile(p: string, counts: { files: number; bytes: number }): Promise<void> {
  const st = lstatSync(p)
  if (st.isFile() && st.size <= SYNC_WIPE_MAX) {
    const fd = openSync(p, constants.O_RDWR | constants.O_NOFOLLOW)
    try {
      for (let off = 0; off < st.size; ) {
        off += writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, st.size - off), off)
      }
    } finally {
      closeSync(fd)
    }
  } else if (st.isFile()) {
    await overwrite(p, st.size, false)
  }
  if (st.isFile()) counts.bytes += st.size
  unlinkSync(p)
  counts.files++
}

/**
 * Overwrites `size` bytes of the regular file `p` with zeros: 16 MiB a call, two calls at a
 * time on disjoint runs (two of the thread pool's threads: a 1 GiB plaintext is wiped on two
 * cores).
 */
async function overwrite(p: string, size: number, sync: boolean): Promise<void> {
  // A sandbox may have written this path (an image's /digicap/output) and swapped a FIFO in after
  // the lstat: O_NONBLOCK keeps the open from blocking a pool thread, the fstat skips it.
  const fh = await open(p, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  if (!(await fh.stat().catch(() => undefined))?.isFile()) {
    await fh.close()
    return
  }
  const runBytes = ZERO_RUN * ZEROS.length
  const lane = async (first: number) => {
    for (let at = first * runBytes; at < size; at += WIPE_LANES * runBytes) {
      const end = Math.min(size, at + runBytes)
      for (let off = at; off < end; ) {
        const run: Uint8Array[] = []
        for (let n = off; n < end; n += ZEROS.length) {
          run.push(ZEROS.subarray(0, Math.min(ZEROS.length, end - n)))
        }
        off += (await fh.writev(run, off)).bytesWritten
      }
    }
  }
  try {
    const lanes: Promise<void>[] = []
    for (let i = 0; i < WIPE_LANES; i++) lanes.push(lane(i))
    const settled = await Promise.allSettled(lanes)
    for (const r of settled) if (r.status === 'rejected') throw r.reason
    if (sync) await fh.sync()
  } finally {
    await fh.close()
  }
}
