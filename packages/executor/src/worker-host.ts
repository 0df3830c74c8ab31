import { Worker, type WorkerOptions } from 'node:worker_threads'
import {
  SandboxAbortedError,
  SandboxCrashError,
  SandboxMemoryError,
  SandboxTimeoutError,
} from './errors.ts'

/** Messages a sandbox worker posts to its host. */
export type WorkerMessage =
  | { readonly type: 'started' }
  | { readonly type: 'done'; readonly payload: unknown }
  /** The worker saw a limit break and asks to be killed now (the program may keep running). */
  | { readonly type: 'stop'; readonly payload: unknown }

export interface WorkerRunParams {
  readonly url: URL
  readonly workerData: unknown
  readonly transferList?: WorkerOptions['transferList']
  readonly resourceLimits: NonNullable<WorkerOptions['resourceLimits']>
  /** Budget for the worker to load its runtime and post `started`. */
  readonly startupTimeoutMs: number
  /** Program time limit; the host kills the worker at `timeLimitMs + graceMs` after `started`. */
  readonly timeLimitMs: number
  readonly graceMs: number
  readonly signal?: AbortSignal | undefined
  /** Periodic check while the program runs; return an error to kill the worker with it. */
  readonly watch?: { readonly everyMs: number; readonly check: () => Promise<Error | undefined> }
  readonly execArgv?: string[] | undefined
  /** Turn a `stop` message into the error the run fails with. */
  readonly stopError?: ((payload: unknown) => Error) | undefined
}

/**
 * Run one sandbox worker to completion. The worker is always terminated before this
 * settles, whatever happened, so no thread or handle outlives the run.
 */
export function runWorker(p: WorkerRunParams): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (p.signal?.aborted) {
      reject(new SandboxAbortedError('Run aborted before the sandbox started'))
      return
    }
    const worker = new Worker(p.url, {
      workerData: p.workerData,
      transferList: p.transferList,
      resourceLimits: p.resourceLimits,
      env: {},
      argv: [],
      execArgv: p.execArgv ?? [],
      stdout: true,
      stderr: true,
      stdin: false,
      trackUnmanagedFds: true,
    })
    // Nothing the worker prints reaches the host's stdio.
    worker.stdout.resume()
    worker.stderr.resume()
    let settled = false
    let timer: NodeJS.Timeout | undefined
    let watchTimer: NodeJS.Timeout | undefined
    let watching: Promise<unknown> | undefined

    const finish = (err: Error | undefined, value?: unknown) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearInterval(watchTimer)
      p.signal?.removeEventListener('abort', onAbort)
      worker.removeAllListeners('message')
      const done = () => (err ? reject(err) : resolve(value))
      // Settle only once the thread is gone and its stdio pipes are closed: no handle outlives the run.
      void Promise.allSettled([
        worker.terminate(),
        watching,
        streamClosed(worker.stdout),
        streamClosed(worker.stderr),
      ]).then(done)
    }
    const onAbort = () => finish(new SandboxAbortedError('Run aborted; sandbox terminated'))
    p.signal?.addEventListener('abort', onAbort, { once: true })

    timer = setTimeout(
      () =>
        finish(
          new SandboxTimeoutError('Sandbox did not start in time', {
            details: { startupTimeoutMs: p.startupTimeoutMs, enforcedBy: 'host' },
          }),
        ),
      p.startupTimeoutMs,
    )
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'started') {
        clearTimeout(timer)
        timer = setTimeout(
          () =>
            finish(
              new SandboxTimeoutError('Program exceeded its time limit; sandbox terminated', {
                details: { timeLimitMs: p.timeLimitMs, enforcedBy: 'host' },
              }),
            ),
          p.timeLimitMs + p.graceMs,
        )
        if (p.watch) {
          const w = p.watch
          watchTimer = setInterval(() => {
            if (watching || settled) return
            watching = w.check().then(
              (e) => {
                watching = undefined
                if (e) finish(e)
              },
              () => {
                watching = undefined
              },
            )
          }, w.everyMs)
        }
      } else if (msg.type === 'stop' && p.stopError) {
        finish(p.stopError(msg.payload))
      } else if (msg.type === 'done') {
        finish(undefined, msg.payload)
      }
    })
    worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        finish(
          new SandboxMemoryError('Sandbox worker ran out of memory and was terminated', {
            details: { enforcedBy: 'host' },
          }),
        )
      } else {
        finish(
          new SandboxCrashError('Sandbox worker failed', {
            details: { phase: 'host' },
            cause: err,
          }),
        )
      }
    })
    worker.on('exit', (code) => {
      finish(
        new SandboxCrashError('Sandbox worker exited without a result', {
          details: { exitCode: code },
        }),
      )
    })
  })
}

function streamClosed(s: NodeJS.ReadableStream & { closed?: boolean }): Promise<void> {
  if (s.closed) return Promise.resolve()
  return new Promise((r) => s.once('close', () => r()))
}

/** Resolve a sibling worker module, as `.ts` from sources and `.js` from the build. */
export function siblingWorkerUrl(name: string, base: string): URL {
  const ext = base.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./${name}${ext}`, base)
}
