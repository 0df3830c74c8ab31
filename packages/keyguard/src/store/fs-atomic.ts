/**
 * Crash-safe file writes: write a temp file in the same directory, fsync it, then rename
 * it over the target (or hard-link it, to create exclusively), then fsync the directory.
 * A reader sees the old file or the new file, never a torn one.
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Prefix of temp files: `.tmp-<name>.<pid>.<random>`. A crash can leave them behind;
 * {@link removeStaleTemps} cleans up those whose writer process is gone.
 */
export const TEMP_PREFIX = '.tmp-'

/** `<pid>.<12 hex>` at the end of a temp name; older temps have no pid. */
const TEMP_OWNER = /\.(\d+)\.[0-9a-f]{12}$/

/** Whether process `pid` exists (EPERM: it exists but belongs to another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Whether a temp file name is a leftover: ours by prefix, and its writer (the pid in the
 * name) is no longer running. A name without a pid was written before pids were recorded.
 */
export function isStaleTemp(name: string, prefix = TEMP_PREFIX): boolean {
  if (!name.startsWith(prefix)) return false
  const owner = TEMP_OWNER.exec(name)
  if (!owner) return true
  const pid = Number(owner[1])
  return pid !== process.pid && !processAlive(pid)
}

/** A fresh temp name for `target`, in the same directory. */
export function tempPathFor(target: string, prefix = TEMP_PREFIX): string {
  return join(
    dirname(target),
    `${prefix}${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}`,
  )
}

export interface AtomicWriteOptions {
  /** File mode of the new file. Default 0o600. */
  mode?: number
  /** Fail with `EEXIST` instead of replacing an existing file. */
  exclusive?: boolean
}

/** fsyncs a directory so a rename or link inside it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Makes a directory (mode 0700 by default) and fsyncs its parent. */
export async function ensureDir(dir: string, mode = 0o700): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode })
  if (created !== undefined) await syncDir(dirname(dir))
}

/**
 * Writes `data` to `path` atomically and durably.
 * @throws the fs error (`EEXIST` when `exclusive` and the file exists).
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const dir = dirname(path)
  const tmp = tempPathFor(path)
  const fh = await open(tmp, 'wx', options.mode ?? 0o600)
  try {
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (options.exclusive) {
      await link(tmp, path)
      await unlink(tmp)
    } else {
      await rename(tmp, path)
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
  await syncDir(dir)
}

/**
 * Deletes the temp files a crashed writer left in `dir` (see {@link isStaleTemp}); temps of a
 * running process (another `pi-node seal`, the daemon) are left alone. A missing `dir` has none.
 * @returns how many were removed.
 */
export async function removeStaleTemps(dir: string): Promise<number> {
  let removed = 0
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  for (const name of names) {
    if (isStaleTemp(name)) {
      await unlink(join(dir, name)).then(
        () => removed++,
        () => undefined,
      )
    }
  }
  return removed
}
