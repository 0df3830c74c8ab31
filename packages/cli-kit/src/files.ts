import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { processAlive } from './lock.ts'

/**
 * Temp files of {@link writeJsonAtomic} are `.tmp-<name>.<pid>.<random>` (the same scheme as
 * the keyguard's atomic writes), so {@link removeStaleTemps} can tell a crashed writer's
 * leftover from a running writer's file.
 */
export const TEMP_PREFIX = '.tmp-'
const TEMP_OWNER = /\.(\d+)\.[0-9a-f]{12}$/
/** capsule-core's file writers' temp files: `.<name>.<pid>.<random>.partial`. */
const PARTIAL_SUFFIX = '.partial'

/**
 * Writes `value` as pretty JSON to `path` atomically, mode 0600 ({@link writeFileAtomic}).
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`)
}

/**
 * Writes `text` to `path` atomically, mode 0600: a new temp file beside it (`wx`: never one a
 * link points at), fsync, rename (which replaces a link at `path`, not its target), then fsync
 * of the folder so the rename itself survives a power cut. A crash leaves the old file or the
 * new one, never a torn one (and maybe a temp file: see {@link removeStaleTemps}).
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(
    dir,
    `${TEMP_PREFIX}${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}`,
  )
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  await rename(tmp, path)
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

/**
 * Deletes the temp files of {@link writeJsonAtomic} that a crashed writer left in `dir`: the
 * `.tmp-*` names whose writer (the pid in the name) is gone, the `<name>.<random>.tmp`
 * names of earlier versions, and capsule files a killed seal was writing
 * (`.<name>.<pid>.<random>.partial`). A running writer's temp file is left alone; a missing `dir` has
 * none. Call it at start, for each folder the app writes into.
 * @returns how many were removed.
 */
export async function removeStaleTemps(dir: string): Promise<number> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  let removed = 0
  for (const name of names) {
    const legacy = /\.[0-9a-f]{12}\.tmp$/.test(name)
    let stale = legacy
    if (name.startsWith(TEMP_PREFIX)) {
      const owner = TEMP_OWNER.exec(name)
      const pid = owner ? Number(owner[1]) : undefined
      stale = pid === undefined || (pid !== process.pid && !processAlive(pid))
    } else if (name.endsWith(PARTIAL_SUFFIX)) {
      // A capsule file being written (`.<name>.<pid>.<random>.partial`): only once its writer
      // is gone; one without a pid (older versions) cannot be told apart and stays.
      const owner = TEMP_OWNER.exec(name.slice(0, -PARTIAL_SUFFIX.length))
      stale = owner !== null && Number(owner[1]) !== process.pid && !processAlive(Number(owner[1]))
    }
    if (stale) {
      await unlink(join(dir, name)).then(
        () => removed++,
        () => undefined,
      )
    }
  }
  return removed
}
