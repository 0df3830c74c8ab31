import { type Transferable, Worker, type WorkerOptions } from 'node:worker_threads'
import {
  SandboxAbortedError,
  SandboxCrashError,
  SandboxMemoryError,
  SandboxTimeoutError,
} from '../errors.ts'

/** Messages a sandbox worker posts to its host. */
export type WorkerMessage =
  | { readonly type: 'started' }
  | { readonly type: 'done'; readonly payload: unknown }
  /** The worker saw a limit break and asks to be killed now (the program may keep running). */
  | { readonly type: 'stop'; readonly payload: unknown }

export interface WorkerSpawnParams {
  readonly url: URL
  /** Data the worker needs to boot (e.g. the compiled QuickJS module); never capsule data. */
  readonly bootData: unknown
  readonly resourceLimits: NonNullable<WorkerOptions['resourceLimits']>
  readonly execArgv?: string[] | undefined
}

/**
 * Start a sandbox worker with an empty env and argv. Its stdio is not captured (captured
 * stdio holds a ref'd port that would keep an idle spare alive); the worker modules mute
 * their own console and stdio instead, so nothing they print reaches the host's.
 */
export function spawnWorker(s: WorkerSpawnParams): Worker {
  const worker = new Worker(s.url, {
    workerData: s.bootData,
    resourceLimits: s.resourceLimits,
    env: {},
    argv: [],
    execArgv: s.execArgv ?? [],
    stdin: false,
    trackUnmanagedFds: true,
  })
  return worker
}

/**
 * Where a sandbox gets its workers: a fresh one per run, and with `prewarm` one spare kept
 * booted (and unref'd, so it never keeps the process alive) to take the next run. A spare
 * has never seen a job; every worker still runs exactly one job and is then terminated.
 */
export interface WorkerSource {
  take(): Worker
  close(): Promise<void>
}

export function workerSource(spawn: () => Worker, prewarm: boolean): WorkerSource {
  let spare: Worker | undefined
  let closed = false
  const refill = () => {
    if (!prewarm || closed || spare) return
    const w = spawn()
    w.unref()
    const drop = () => {
      if (spare === w) spare = undefined
    }
    w.on('error', drop)
    w.on('exit', drop)
    spare = w
  }
  return {
    take() {
      const w = spare ?? spawn()
      spare = undefined
      w.removeAllListeners('error')
      w.removeAllListeners('exit')
      w.ref()
      refill()
      return w
    },
    async close() {
      closed = true
      const w = spare
      spare = undefined
      if (w) {
        await w.terminate().catch(() => {})
      }
    },
  }
}

export interface WorkerRunParams {
  /** A worker from {@link spawnWorker} that has not run a job yet. */
  readonly worker: Worker
  /** The job message; the worker starts on receiving it. */
  readonly job: unknown
  readonly transferList?: readonly Transferable[] | undefined
  /** Budget for the worker to load its runtime and post `started`. */
  readonly startupTimeoutMs: number
  /** Program time limit; the host kills the worker at `timeLimitMs + graceMs` after `started`. */
  readonly timeLimitMs: number
  readonly graceMs: number
  readonly signal?: AbortSignal | undefined
  /** Periodic check while the program runs; return an error to kill the worker with it. */
  readonly watch?: { readonly everyMs: number; readonly check: () => Promise<Error | undefined> }
  /** Turn a `stop` message into the error the run fails with. */
  readonly stopError?: ((payload: unknown) => Error) | undefined
}

/**
 * Run one job in a sandbox worker to completion. The worker is always terminated before
 * this settles, whatever happened, so no thread or handle outlives the run.
 */
export function runWorker(p: WorkerRunParams): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const worker = p.worker
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
      // Settle only once the thread is gone and no poll is in flight: no handle outlives the run.
      void Promise.allSettled([worker.terminate(), watching]).then(done)
    }
    const onAbort = () => finish(new SandboxAbortedError('Run aborted; sandbox terminated'))
    if (p.signal?.aborted) {
      finish(new SandboxAbortedError('Run aborted before the sandbox started'))
      return
    }
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
    worker.postMessage({ type: 'job', job: p.job }, (p.transferList ?? []) as Transferable[])
  })
}

/**
 * Resolve a worker module: `worker.ts` beside the caller's source file, or `<kind>-worker.js`
 * beside the bundle (tsup emits each worker as its own flat entry).
 */
export function sandboxWorkerUrl(kind: 'quickjs' | 'wasi', base: string): URL {
  return base.endsWith('.ts') ? new URL('./worker.ts', base) : new URL(`./${kind}-worker.js`, base)
}
