/**
 * The status page's token: 32 random bytes (hex) in a 0600 file of the data folder. Only the
 * daemon writes it — a new one at each `serve` start (that is how it is rotated) — and a
 * one-shot command (`pi-node status`, maybe run as root) only reads it, after checking that it
 * is a regular file, private (no group or other bits) and owned by the data folder's owner.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { lstat, readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { writeFileAtomic } from '@digicap/cli-kit'
import { StatusTokenError } from '../errors.ts'

/**
 * Writes a new token (mode 0600, atomically: a temp file renamed over any old one, whoever
 * owned it) and returns it. The daemon calls it at each start: the old token stops working.
 */
export async function createStatusToken(file: string): Promise<string> {
  const token = randomBytes(32).toString('hex')
  await writeFileAtomic(file, `${token}\n`)
  return token
}

/**
 * Reads the token the daemon wrote; never creates one.
 * @throws {StatusTokenError} `details.reason`: `missing` (the daemon has not written it),
 *   `not-a-file`, `permissions` (group or other bits set), `owner` (not the data folder's
 *   owner), `invalid` (not 64 hex digits).
 */
export async function readStatusToken(file: string): Promise<string> {
  let info: Awaited<ReturnType<typeof lstat>>
  try {
    info = await lstat(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    throw new StatusTokenError('The status page token is missing', {
      details: { reason: 'missing', file },
      hint: 'serve --ops-port writes it at start.',
    })
  }
  if (!info.isFile())
    throw new StatusTokenError('The status page token is not a regular file', {
      details: { reason: 'not-a-file', file },
    })
  if ((info.mode & 0o077) !== 0)
    throw new StatusTokenError('The status page token is readable by others', {
      details: { reason: 'permissions', file, mode: (info.mode & 0o777).toString(8) },
      hint: `chmod 600 ${file}, or restart serve (it writes a new one).`,
    })
  const folder = await stat(dirname(file))
  if (info.uid !== folder.uid)
    throw new StatusTokenError("The status page token is not owned by the data folder's owner", {
      details: { reason: 'owner', file, uid: info.uid, folderUid: folder.uid },
      hint: 'Restart serve (as the service user): it writes a new one.',
    })
  const text = (await readFile(file, 'utf8')).trim()
  if (!/^[0-9a-f]{64}$/.test(text))
    throw new StatusTokenError('The status page token is not 64 hex digits', {
      details: { reason: 'invalid', file },
      hint: 'Restart serve: it writes a new one.',
    })
  return text
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false
  const a = Buffer.from(presented)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
