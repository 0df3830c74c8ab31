/** A child process's output, collected as it comes: what tests and the demo read of a CLI they ran. */
import type { ChildProcess } from 'node:child_process'

export interface ChildOutput {
  /** Everything the child wrote to stdout so far. */
  stdout(): string
  /** Everything the child wrote to stderr so far. */
  stderr(): string
  /**
   * Its exit code (null when a signal ended it) once its streams closed: by then both strings
   * are complete. Rejects if it could not be started (never unhandled when nobody awaits it).
   */
  exited: Promise<number | null>
}

/**
 * Collects `child`'s stdout and stderr (when piped) into strings.
 *
 * @example
 * ```ts
 * const out = collectOutput(spawn('pi-node', ['status', '--json']))
 * const code = await out.exited
 * const doc = JSON.parse(out.stdout())
 * ```
 */
export function collectOutput(child: ChildProcess): ChildOutput {
  let stdout = ''
  let stderr = ''
  // decoded across chunks: a character split between two reads is not mangled
  child.stdout?.setEncoding('utf8')
  child.stderr?.setEncoding('utf8')
  child.stdout?.on('data', (d) => {
    stdout += d
  })
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve(code))
  })
  exited.catch(() => undefined)
  return { stdout: () => stdout, stderr: () => stderr, exited }
}
