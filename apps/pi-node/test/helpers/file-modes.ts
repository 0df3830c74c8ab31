/**
 * The data-folder mode rule the READMEs state (pi-node: "Everything is mode 0600/0700";
 * executor-node: every file 0600, every folder 0700 whatever the umask), as a check.
 */
import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Every entry under `root` (itself included) that is not a 0700 folder, a 0600 file or a 0600
 * socket (`serve`'s `seal.sock`, the executor's run socket: left behind by a daemon killed
 * before its SIGTERM handler was up, as `file-modes.test.ts`'s quick kill may do), as
 * `<path relative to root> <octal mode>`; anything else (a link, a FIFO) is listed too.
 */
export async function looseModes(root: string): Promise<string[]> {
  const bad: string[] = []
  for (const name of ['', ...(await readdir(root, { recursive: true }))]) {
    const info = await lstat(join(root, name))
    const mode = info.mode & 0o777
    const want = info.isDirectory() ? 0o700 : info.isFile() || info.isSocket() ? 0o600 : -1
    if (mode !== want) bad.push(`${name || '.'} ${mode.toString(8)}`)
  }
  return bad
}
