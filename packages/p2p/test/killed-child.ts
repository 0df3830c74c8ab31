/**
 * A real crash for the stores' "whole or absent" tests: `script` (an ES module) runs in a Node
 * process of its own in this package's folder, and is expected to SIGKILL itself mid-write.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** How the child ended (`signal` is `'SIGKILL'` when it killed itself) and what it printed. */
export function runKilledChild(script: string): Promise<{ signal: string | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.on('exit', (_code, signal) => done({ signal, out }))
  })
}
