/**
 * A result receiver's replay memory in a file (shared by `@digicap/executor`'s node and
 * `@digicap/sdk`'s `openReceiver`): the run and grant ids it has spent, so that a
 * result replayed after a restart is refused `replayed` as it was before (issue #12).
 *
 * Bounded: the newest `maxIds` ids are kept (two per accepted result), the oldest forgotten
 * first, as in the receiver's memory. Each accepted result rewrites the file atomically with
 * the writer passed in (one copy of the atomic write: cli-kit's `writeJsonAtomic` fits), one
 * write at a time; a crash leaves the old file or the new one.
 */
import { readFile } from 'node:fs/promises'
import { ResultReplayStoreError } from './errors.ts'
import type { ResultReplayStore } from './result-receiver.ts'

/** Options of {@link fileResultReplays}. */
export interface FileResultReplaysInit {
  /** The JSON file (created on the first accepted result). */
  readonly path: string
  /** Ids kept (two per result). Default 20 000: the last 10 000 results, ≈ 1.4 MB of file. */
  readonly maxIds?: number
}

/** Components of {@link fileResultReplays}. */
export interface FileResultReplaysComponents {
  /**
   * Writes `value` as JSON to `path` atomically (temp file, fsync, rename, fsync the folder):
   * `@digicap/cli-kit`'s `writeJsonAtomic`.
   */
  writeJsonAtomic(path: string, value: unknown): Promise<void>
}

const VERSION = 1
/** `r` (run) or `g` (grant), then the 32-byte id in lower-case hex. */
const ID = /^[rg]0x[0-9a-f]{64}$/

/**
 * @throws {ResultReplayStoreError} (`REPLAY_STORE`) from `load()` when the file is not a replay memory this version
 *   wrote (refusing to start beats silently forgetting every spent id).
 * @example
 * ```ts
 * import { writeJsonAtomic } from '@digicap/cli-kit'
 * const replays = fileResultReplays({ path: join(dataDir, 'receiver-replays.json') })({ writeJsonAtomic })
 * const receiver = createResultReceiver({ privateKey })({ libp2p, store, grants, replays })
 * ```
 */
export function fileResultReplays(
  init: FileResultReplaysInit,
): (components: FileResultReplaysComponents) => ResultReplayStore {
  const maxIds = init.maxIds ?? 20_000
  return ({ writeJsonAtomic }) => {
    /** The ids the file holds (loaded, or written by a write that succeeded). */
    let committed: string[] = []
    // Writes go one at a time, in order: a later snapshot never lands before an earlier one.
    let writing: Promise<void> = Promise.resolve()

    const bad = (why: string, cause?: unknown): ResultReplayStoreError =>
      new ResultReplayStoreError('The receiver replay memory file is unreadable', {
        details: { path: init.path, why },
        hint: 'Restore it, or move it away to start with an empty memory (results replayed from before would then be accepted once more).',
        ...(cause === undefined ? {} : { cause }),
      })

    return {
      async load() {
        let text: string
        try {
          text = await readFile(init.path, 'utf8')
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
          throw bad('read failed', err)
        }
        let doc: unknown
        try {
          doc = JSON.parse(text)
        } catch (err) {
          throw bad('not JSON', err)
        }
        const d = doc as { version?: unknown; ids?: unknown }
        if (d?.version !== VERSION || !Array.isArray(d.ids)) throw bad('not a replay memory')
        if (!d.ids.every((x): x is string => typeof x === 'string' && ID.test(x))) {
          throw bad('malformed id')
        }
        committed = d.ids.slice(-maxIds)
        return [...committed]
      },
      add(newIds) {
        // Each snapshot is what the file holds plus this call's ids, made when its turn comes:
        // a write that failed (its result refused `busy`, nothing spent) never lands in a later
        // one's snapshot, and a later call's ids never ride on an earlier write (review).
        const next = writing.then(async () => {
          const ids = [...committed, ...newIds].slice(-maxIds)
          await writeJsonAtomic(init.path, { version: VERSION, ids })
          committed = ids
        })
        // One failed write must not fail every later one; its caller sees it through `next`.
        writing = next.catch(() => {})
        return next
      },
    }
  }
}
