/** Security warnings on stderr: one line each, at most once per command. */
import type { Io } from './output.ts'

const shown = new WeakMap<Io, Set<string>>()

/**
 * Prints `WARNING: <warning>` on stderr (or hands it to `write`: a daemon's JSON logger under
 * systemd) unless this `io` (one command) has shown it already.
 * Several parts of a command may meet the same weakness (a sealer warns when it is built,
 * when the daemon starts, when its status is read); the user needs to read it once.
 *
 * @example
 * ```ts
 * warnOnce(io, 'INSECURE: the software sealer keeps its private key in a file; …')
 * ```
 */
export function warnOnce(
  io: Io,
  warning: string,
  write: (warning: string) => void = (w) => io.stderr.write(`WARNING: ${w}\n`),
): void {
  let seen = shown.get(io)
  if (!seen) {
    seen = new Set()
    shown.set(io, seen)
  }
  if (seen.has(warning)) return
  seen.add(warning)
  write(warning)
}
