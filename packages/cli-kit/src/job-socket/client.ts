/**
 * The CLI's side of a job socket: when the daemon serves the data folder, the CLI sends it the
 * job and relays what comes back, instead of starting its own node. Light: only `node:net` and
 * `node:fs` load here.
 */
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { encodeFrame, FrameReader, type JobAnswer, jobSocketPaths } from './protocol.ts'

export interface AskDaemonInit {
  readonly dataDir: string
  /** The socket's name (`run`, `seal`). */
  readonly name: string
  readonly version: number
  /** Largest answer frame read. */
  readonly maxAnswerBytes: number
  /**
   * Makes the error of an error frame (its code, message, details, hint) and of a bad answer or
   * a connection closed early (`code` undefined: the socket's own error, `details.reason`
   * `malformed`/`too-large`/`closed`).
   */
  error(
    code: string | undefined,
    shortMessage: string,
    options: { details: Record<string, unknown>; hint?: string },
  ): Error
  /** The hint of a connection the daemon closed before its answer. */
  readonly closedHint: string
}

export interface AskDaemonHandlers {
  readonly onStage?: ((event: Record<string, unknown>) => void) | undefined
  readonly onProgress?: ((progress: Record<string, unknown>) => void) | undefined
}

/**
 * Hands one job (the request's fields beside `v` and `token`) to the daemon serving `dataDir`.
 * @returns the daemon's result document, or undefined when no daemon serves this folder (no
 *   token, no socket, nobody listening): the CLI then does the job itself.
 * @throws `init.error(...)`: the job's typed error as the daemon reported it, a refusal, a bad
 *   answer, or the daemon gone mid-job.
 * @example
 * ```ts
 * const result = await askDaemon(init, { cid, options })
 * if (result === undefined) await runHere()
 * ```
 */
export async function askDaemon(
  init: AskDaemonInit,
  request: Record<string, unknown>,
  handlers: AskDaemonHandlers = {},
): Promise<Record<string, unknown> | undefined> {
  const paths = jobSocketPaths(init.dataDir, init.name)
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
  sock.write(encodeFrame({ ...request, v: init.version, token }))
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(init.maxAnswerBytes)
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
          reject(init.error(undefined, 'The daemon sent a bad answer', { details: { reason } })),
        )
      }
      for (const f of frames as JobAnswer[]) {
        if (f.type === 'stage') handlers.onStage?.(f.event)
        else if (f.type === 'progress') handlers.onProgress?.(f.progress)
        else if (f.type === 'result') return settle(() => resolve(f.result))
        else if (f.type === 'error') {
          const opts = { details: f.details ?? {}, ...(f.hint ? { hint: f.hint } : {}) }
          return settle(() => reject(init.error(f.code, f.shortMessage, opts)))
        }
      }
    })
    sock.on('error', () => {})
    sock.once('close', () =>
      settle(() =>
        reject(
          init.error(undefined, 'The daemon closed the connection before the job ended', {
            details: { reason: 'closed' },
            hint: init.closedHint,
          }),
        ),
      ),
    )
  })
}
