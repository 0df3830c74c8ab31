/** The status page's token: 32 random bytes (hex) in a 0600 file, created on first use. */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, readFile, writeFile } from 'node:fs/promises'

/** Reads the token file, or creates it (mode 0600) when it is missing. */
export async function readOrCreateStatusToken(file: string): Promise<string> {
  try {
    const text = (await readFile(file, 'utf8')).trim()
    if (/^[0-9a-f]{64}$/.test(text)) return text
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('hex')
  await writeFile(file, `${token}\n`, { mode: 0o600 })
  await chmod(file, 0o600)
  return token
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false
  const a = Buffer.from(presented)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
