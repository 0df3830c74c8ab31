/**
 * The CLI's side of the run socket (ADR 0035): when `executor-node serve` runs on the data
 * folder, `executor-node run` sends it the job and prints what comes back, instead of starting
 * its own libp2p node. Light: only `node:net`, `node:fs` and capsule-core's error class load.
 */

import { DigicapError } from '@digicap/capsule-core/light'
import { askDaemon } from '@digicap/cli-kit/job-socket'
import { RunSocketError } from './errors.ts'
import { MAX_ANSWER_BYTES, RUN_SOCKET_VERSION, type RunRequest } from './protocol.ts'

export interface RunViaDaemonHandlers {
  readonly onStage?: ((event: never) => void) | undefined
  readonly onFetchProgress?: ((progress: never) => void) | undefined
}

/**
 * Hands one run to the daemon serving `dataDir`.
 * @returns the daemon's run result (JSON: `result` as 0x hex, bigints as strings), or
 *   undefined when no daemon serves this folder (no socket, nobody listening, no token).
 * @throws the run's typed error as the daemon reported it (same `code`, `details`, `hint`),
 *   or {@link RunSocketError} when the daemon refused the request or went away mid-run.
 */
export function runViaDaemon(
  dataDir: string,
  cid: string,
  options: RunRequest['options'],
  handlers: RunViaDaemonHandlers = {},
): Promise<Record<string, unknown> | undefined> {
  return askDaemon(
    {
      dataDir,
      name: 'run',
      version: RUN_SOCKET_VERSION,
      maxAnswerBytes: MAX_ANSWER_BYTES,
      error: (code, shortMessage, opts) =>
        code === undefined || code === 'RUN_SOCKET'
          ? new RunSocketError(
              code === undefined && opts.details.reason === 'closed'
                ? 'The daemon closed the connection before the run ended'
                : shortMessage,
              opts,
            )
          : new DigicapError(code, shortMessage, opts),
      closedHint: 'See the daemon’s log; `executor-node run --no-daemon` runs without it.',
    },
    { cid, options },
    {
      onStage: (e) => handlers.onStage?.(e as never),
      onProgress: (p) => handlers.onFetchProgress?.(p as never),
    },
  )
}
