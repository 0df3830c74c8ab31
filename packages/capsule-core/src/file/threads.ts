/** How many worker lanes the file helpers use for a payload. */
import { availableParallelism } from 'node:os'
import { InvalidArgumentError } from '../errors.ts'

/**
 * The file helpers process chunks on several cores (worker-thread lanes, one per core, at most
 * {@link MAX_FILE_THREADS}) when the payload is at least this large and the machine has two or
 * more cores. Starting the workers costs ~30–40 ms of CPU; below this size one thread wins.
 */
export const PARALLEL_FILE_MIN_BYTES = 32 * 1024 * 1024

/** Upper bound on worker lanes: past four, the page cache copy, not the crypto, is the limit. */
export const MAX_FILE_THREADS = 4

/** Option shared by the file helpers. */
export interface FileThreadsOption {
  /**
   * Worker threads for the payload. Default: one per core (at most {@link MAX_FILE_THREADS})
   * for payloads of {@link PARALLEL_FILE_MIN_BYTES} or more on machines with two or more
   * cores, else the calling thread alone. `1` keeps the work on the calling thread (e.g. a
   * daemon that must leave cores free); `n ≥ 2` uses `n` lanes whatever the size.
   */
  threads?: number
  /**
   * Whether the worker lanes wait parked for the next job once this one is done (default
   * `true`: their key copy and buffers are zeroed first, `lane-pool.ts`). `false` ends them with
   * the job, e.g. when a step that needs the memory comes next (the executor's sandbox run).
   */
  keepWorkers?: boolean | undefined
}

/** Lanes for a payload of `size` bytes, or 0 for the calling thread alone. */
export function lanesFor(threads: number | undefined, size: number): number {
  if (threads !== undefined) {
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new InvalidArgumentError('threads must be a positive integer', {
        details: { threads },
      })
    }
    return threads === 1 ? 0 : Math.min(MAX_FILE_THREADS, threads)
  }
  const cores = availableParallelism()
  return cores >= 2 && size >= PARALLEL_FILE_MIN_BYTES ? Math.min(MAX_FILE_THREADS, cores) : 0
}

/** What `warmFileLanes` starts workers for. */
export type WarmFileLanesOptions = FileThreadsOption & {
  /** The payload's size in bytes (default: large enough for every core). */
  size?: number
  /** Or the file to be sealed or opened: its size (a file that cannot be read warms nothing). */
  file?: string
}
