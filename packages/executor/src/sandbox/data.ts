import { SandboxAbortedError, SandboxCrashError, SandboxTimeoutError } from '../errors.ts'
import { checkJob } from './limits.ts'
import type {
  RuntimeDescriptor,
  Sandbox,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from './types.ts'

/** The `data` runtime: no code, the caller's own function; part of every data run measurement. */
export const DATA_RUNTIME_ID = 'digicap-data/1'

/** What the caller's function receives besides the plaintext. */
export interface DataHandlerContext {
  readonly runtime: RuntimeDescriptor
  readonly args: readonly string[]
  /** Fires at the time limit or when the run is aborted; the handler should stop. */
  readonly signal: AbortSignal
}

/** The caller's function: gets the plaintext, returns the output (bytes, text, or nothing). */
export type DataHandler = (
  input: Uint8Array,
  context: DataHandlerContext,
) => Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>

/**
 * A "sandbox" for data capsules: there is no capsule code to confine, so the plaintext is
 * handed to the caller's own function (library use). The time limit is enforced by
 * rejecting with `SandboxTimeoutError` and aborting `context.signal`; the function itself
 * runs in the host and is trusted.
 *
 * @example
 * ```ts
 * const sandbox = dataSandbox((bytes) => `got ${bytes.length} bytes`)
 * ```
 */
export function dataSandbox(handler: DataHandler): Sandbox {
  return {
    kind: 'data',
    runtimeId: DATA_RUNTIME_ID,
    async close() {},
    async run(job: SandboxJob, options: SandboxRunOptions = {}): Promise<SandboxResult> {
      checkJob(job, 'data')
      const t0 = performance.now()
      const ac = new AbortController()
      const outer = options.signal
      if (outer?.aborted) throw new SandboxAbortedError('Run aborted before it started')
      let timer: NodeJS.Timeout | undefined
      let onAbort: (() => void) | undefined
      const stop = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          ac.abort()
          reject(
            new SandboxTimeoutError('Data handler exceeded its time limit', {
              details: { runtime: 'data', timeLimitMs: job.runtime.timeLimitMs },
            }),
          )
        }, job.runtime.timeLimitMs)
        onAbort = () => {
          ac.abort()
          reject(new SandboxAbortedError('Run aborted'))
        }
        outer?.addEventListener('abort', onAbort, { once: true })
      })
      try {
        const result = await Promise.race([
          Promise.resolve().then(() =>
            handler(job.input, { runtime: job.runtime, args: job.args ?? [], signal: ac.signal }),
          ),
          stop,
        ])
        const output =
          result === undefined
            ? new Uint8Array(0)
            : typeof result === 'string'
              ? new TextEncoder().encode(result)
              : result
        if (!(output instanceof Uint8Array)) {
          throw new SandboxCrashError('Data handler returned something other than bytes or text')
        }
        return { output, logs: [], stats: { wallMs: performance.now() - t0 } }
      } catch (err) {
        if (err instanceof SandboxTimeoutError || err instanceof SandboxAbortedError) throw err
        if (err instanceof SandboxCrashError) throw err
        throw new SandboxCrashError('Data handler threw', {
          details: { runtime: 'data' },
          cause: err,
        })
      } finally {
        clearTimeout(timer)
        if (onAbort) outer?.removeEventListener('abort', onAbort)
      }
    },
  }
}
