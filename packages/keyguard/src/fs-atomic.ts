/**
 * Crash-safe file writes: write a temp file in the same directory, fsync it, then rename
 * it over the target (or hard-link it, to create exclusively), then fsync the directory.
 * A reader sees the old file or the new file, never a torn one.
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** Prefix of temp files; a crash can leave them behind, {@link removeStaleTemps} cleans up. */
export const TEMP_PREFIX = '.tmp-'

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
  const tmp = join(dir, `${TEMP_PREFIX}${basename(path)}.${randomBytes(6).toString('hex')}`)
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

/** Deletes temp files a crash left in `dir`. Only call it when no writer is running. */
export async function removeStaleTemps(dir: string): Promise<number> {
  let removed = 0
  for (const name of await readdir(dir)) {
    if (name.startsWith(TEMP_PREFIX)) {
      await unlink(join(dir, name)).catch(() => undefined)
      removed++
    }
  }
  return removed
}
