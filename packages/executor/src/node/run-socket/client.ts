/**
 * The CLI's side of the run socket (ADR 0035): when `executor-node serve` runs on the data
 * folder, `executor-node run` sends it the job and prints what comes back, instead of starting
 * its own libp2p node. Light: only `node:net`, `node:fs` and capsule-core's error class load.
 */
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { DigicapError } from '@digicap/capsule-core/light'
import { RunSocketError } from './errors.ts'
import {
  encodeFrame,
  FrameReader,
  MAX_ANSWER_BYTES,
  RUN_SOCKET_VERSION,
  type RunAnswer,
  type RunRequest,
  runSocketPaths,
} from './protocol.ts'

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
export async function runViaDaemon(
  dataDir: string,
  cid: string,
  options: RunRequest['options'],
  handlers: RunViaDaemonHandlers = {},
): Promise<Record<string, unknown> | undefined> {
  const paths = runSocketPaths(dataDir)
  let token: string
  try {
    token = (await readFile(paths.token, 'utf8')).trim()
  } catch {
    return undefined
  }
  const sock = connect(paths.socket)
  const connected = await new Promise<boolean>((resolve) => {
    sock.once('connect', () => resolve(true))
    sock.once('error', () => resolve(false))
  })
  if (!connected) {
    sock.destroy()
    return undefined
  }
  const request: RunRequest = { v: RUN_SOCKET_VERSION, token, cid, options }
  sock.write(encodeFrame(request))
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(MAX_ANSWER_BYTES)
    let settled = false
    const settle = (f: () => void) => {
      if (settled) return
      settled = true
      sock.destroy()
      f()
    }
    sock.on('data', (chunk: Buffer) => {
      let frames: unknown[]
      try {
        frames = reader.push(chunk)
      } catch (err) {
        const reason = (err as { reason?: string }).reason ?? 'malformed'
        return settle(() =>
          reject(new RunSocketError('The daemon sent a bad answer', { details: { reason } })),
        )
      }
      for (const f of frames as RunAnswer[]) {
        if (f.type === 'stage') handlers.onStage?.(f.event as never)
        else if (f.type === 'progress') handlers.onFetchProgress?.(f.progress as never)
        else if (f.type === 'result') return settle(() => resolve(f.result))
        else if (f.type === 'error') {
          const opts = { details: f.details ?? {}, ...(f.hint ? { hint: f.hint } : {}) }
          const err =
            f.code === 'RUN_SOCKET'
              ? new RunSocketError(f.shortMessage, opts)
              : new DigicapError(f.code, f.shortMessage, opts)
          return settle(() => reject(err))
        }
      }
    })
    sock.on('error', () => {})
    sock.once('close', () =>
      settle(() =>
        reject(
          new RunSocketError('The daemon closed the connection before the run ended', {
            details: { reason: 'closed' },
            hint: 'See the daemon’s log; `executor-node run --no-daemon` runs without it.',
          }),
        ),
      ),
    )
  })
}
