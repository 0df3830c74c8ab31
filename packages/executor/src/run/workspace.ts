import { constants } from 'node:fs'
import { lstat, mkdtemp, open, readdir, rm } from 'node:fs/promises'
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
   * `failures` says so: clean-up never spends unbounded time on a huge or sparse file.
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
   * under `root` when given (e.g. a tmpfs for decrypted data).
   */
  tempDir(prefix: string, root?: string): Promise<string>
  /** Zero this buffer on `dispose()` (key material, plaintext). */
  trackBuffer(buffer: Uint8Array): void
  /**
   * Overwrite this file with zeros and remove it on `dispose()`, whatever its size (the run's
   * plaintext file: its size is the header's, not the program's; `maxOverwriteBytes` does not
   * apply). Removed first, before the temp directories.
   */
  trackFile(path: string): void
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
  const dirs: string[] = []
  const buffers: Uint8Array[] = []
  const files: string[] = []
  const handles: Array<() => unknown> = []
  let remoteBuffers = 0
  let remoteBytes = 0
  let disposed = false

  return {
    get disposed() {
      return disposed
    },
    async tempDir(prefix, under) {
      const dir = await mkdtemp(join(under ?? root, `digicap-${prefix}`))
      dirs.push(dir)
      return dir
    },
    trackBuffer(buffer) {
      buffers.push(buffer)
    },
    trackFile(path) {
      files.push(path)
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
          await wipeFile(file, counts, Number.POSITIVE_INFINITY, failures)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
          failures.push(`file: ${(err as Error).message}`)
          await rm(file, { force: true }).catch(() => {})
        }
      }
      const tempRoots = dirs.splice(0)
      for (const dir of tempRoots) {
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
    const fh = await open(p, constants.O_RDWR | constants.O_NOFOLLOW)
    try {
      for (let off = 0; off < st.size; off += ZEROS.length) {
        await fh.write(ZEROS, 0, Math.min(ZEROS.length, st.size - off), off)
      }
      await fh.sync()
    } finally {
      await fh.close()
    }
    counts.bytes += st.size
  }
  await rm(p, { force: true })
  counts.files++
}
