/**
 * `warmFileLanes`: the file helpers' worker threads started ahead of a job, with the lanes'
 * module (`node:worker_threads`, the workers' source) loaded only when it is called, so the
 * light entry can export it and a command's `--help` loads none of it.
 */
import type { WarmFileLanesOptions } from './threads.ts'

/**
 * Starts the worker threads the file helpers would use for a payload of `size` bytes (or the
 * size of `file`), so the next call finds them up instead of paying their start (~40–100 ms
 * each) on its path: e.g. first thing in a CLI, while it reads its configuration and keys,
 * before it seals a large file. They come up in the background and wait parked (no key, no
 * chunk, not keeping the process alive), ending after a few seconds without a job; calling it
 * again adds none past the number of lanes. Best effort: it never throws.
 * @example
 * ```ts
 * warmFileLanes({ file: input })
 * // … configuration, keys …
 * await commitAndSealFile({ … input … })
 * ```
 */
export function warmFileLanes(options: WarmFileLanesOptions = {}): void {
  import('./lanes.ts').then(
    (lanes) => lanes.warmLanes(options),
    () => {},
  )
}
