/**
 * A lock between processes on one machine: a file created exclusively (`O_EXCL`) that holds
 * its owner's pid and a random token. A waiter polls; a lock whose pid is gone (the holder
 * crashed) is broken by renaming it aside, so two waiters never both break the same lock.
 */
import { randomBytes } from 'node:crypto'
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { LockTimeoutError } from './errors.ts'

/** Whether process `pid` exists (EPERM: it exists but belongs to another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface FileLockOptions {
  /** How long to wait for another holder. Default 120 000 ms. */
  timeoutMs?: number
  /** Poll interval while waiting (a random part is added). Default 50 ms. */
  pollMs?: number
  /** What the lock protects, for the timeout error. */
  what?: string
}

interface Holder {
  pid: number
  token: string
}

/** A holder that wrote nothing yet is given this long before its lock counts as broken. */
const EMPTY_GRACE_MS = 10_000

async function readHolder(path: string): Promise<Holder | 'empty' | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const h = JSON.parse(text) as Holder
    if (Number.isSafeInteger(h.pid) && typeof h.token === 'string') return h
  } catch {
    // torn or empty: the holder crashed between create and write, or is writing right now
  }
  return 'empty'
}

async function isStale(path: string, holder: Holder | 'empty'): Promise<boolean> {
  if (holder !== 'empty') return holder.pid !== process.pid && !processAlive(holder.pid)
  const st = await stat(path).catch(() => undefined)
  return st !== undefined && Date.now() - st.mtimeMs > EMPTY_GRACE_MS
}

/** Moves a crashed holder's lock aside; puts it back if it turned out to be a live one. */
async function breakLock(path: string, seen: Holder | 'empty'): Promise<void> {
  const aside = `${path}.broken-${randomBytes(6).toString('hex')}`
  try {
    await rename(path, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // someone else broke it
    throw err
  }
  const moved = await readHolder(aside)
  const same =
    seen === 'empty' ? moved === 'empty' : moved !== 'empty' && moved?.token === seen.token
  // Between our read and our rename the lock changed hands: restore the live holder's lock
  // (if nobody took the free slot meanwhile) rather than run two holders at once.
  if (!same) await link(aside, path).catch(() => undefined)
  await unlink(aside).catch(() => undefined)
}

/**
 * Runs `fn` while holding the lock file `path`; waits for another holder to let go, and
 * breaks a lock whose holder process is gone.
 *
 * @throws {LockTimeoutError} if another live process holds it longer than `timeoutMs`.
 * @example
 * ```ts
 * const receipt = await withFileLock(join(dataDir, 'owner-tx.lock'), () => sendAndWait())
 * ```
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 120_000
  const pollMs = options.pollMs ?? 50
  const token = randomBytes(12).toString('hex')
  const deadline = Date.now() + timeoutMs
  let holder: Holder | 'empty' | undefined
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600)
      try {
        await fh.writeFile(JSON.stringify({ pid: process.pid, token }))
      } finally {
        await fh.close()
      }
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    holder = await readHolder(path)
    if (holder !== undefined && (await isStale(path, holder))) {
      await breakLock(path, holder)
      continue
    }
    if (Date.now() > deadline) {
      throw new LockTimeoutError(`Another process holds the ${options.what ?? 'lock'}`, {
        details: {
          lock: path,
          ...(holder && holder !== 'empty' ? { pid: holder.pid } : {}),
          timeoutMs,
        },
        hint: 'Wait for it to finish; if no such process runs, delete the lock file.',
      })
    }
    await new Promise((r) => setTimeout(r, pollMs + Math.random() * pollMs))
  }
  try {
    return await fn()
  } finally {
    const now = await readHolder(path).catch(() => undefined)
    if (now !== undefined && now !== 'empty' && now.token === token) {
      await unlink(path).catch(() => undefined)
    }
  }
}
