import { SandboxAbortedError, SandboxCrashError, SandboxTimeoutError } from '../errors.ts'
import { jobPayloadDigest } from './job-payload-digest.ts'
import { checkJob } from './limits.ts'
import type {
  JobInputFile,
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
  /**
   * The payload's digest as the run measures it (version 2, ADR 0059): known without reading
   * the payload again.
   */
  readonly payloadDigest: Uint8Array
}

type DataOutput = Uint8Array | string | undefined

/** The caller's function: gets the plaintext, returns the output (bytes, text, or nothing). */
export type DataHandler = (
  input: Uint8Array,
  context: DataHandlerContext,
) => DataOutput | Promise<DataOutput>

/**
 * The caller's function for a payload streamed to the run's plaintext file (ADR 0035): gets
 * the file's path, the data's offset and size (read it by chunks), returns the
 * output. The file is wiped and removed by the run's clean-up once the handler settles or
 * times out.
 */
export type DataFileHandler = (
  input: JobInputFile,
  context: DataHandlerContext,
) => DataOutput | Promise<DataOutput>

export interface DataSandboxInit {
  /**
   * Take payloads as files: the executor then streams the plaintext to the run's tmpfs file
   * (when it has one) and calls this instead of the in-memory handler, so neither side holds
   * the whole payload. Same runtime id.
   */
  readonly fromFile?: DataFileHandler | undefined
}

export interface DataSandboxInit {
  /**
   * Take payloads as files: the executor then streams the plaintext to the run's tmpfs file
   * (when it has one) and calls this instead of the in-memory handler, so neither side holds
   * the whole payload. Same runtime id.
   */
  readonly fromFile?: DataFileHandler | undefined
}

/**
 * A "sandbox" for data capsules: there is no capsule code to confine, so the plaintext is
 * handed to the caller's own function (library use). The time limit is enforced by
 * rejecting with `SandboxTimeoutError` and aborting `context.signal`; the function itself
 * runs in the host and is trusted.
 *
 * @example
 * ```ts
 * const sandbox = dataSandbox((bytes) => `got ${bytes.length} bytes`)
 * const big = dataSandbox(summary, { fromFile: (file) => `got ${file.size} bytes` })
 * ```
 */
export function dataSandbox(handler: DataHandler, init: DataSandboxInit = {}): Sandbox {
  const { fromFile } = init
  return dataRuntime(fromFile !== undefined, (job, ctx) => {
    if (!job.inputFile) return handler(job.input, ctx)
    if (!fromFile) throw new SandboxCrashError('This data sandbox takes the payload in memory')
    return fromFile(job.inputFile, ctx)
  })
}

function dataRuntime(
  readsInputFile: boolean,
  call: (job: SandboxJob, ctx: DataHandlerContext) => DataOutput | Promise<DataOutput>,
): Sandbox {
  return {
    kind: 'data',
    runtimeId: DATA_RUNTIME_ID,
    readsInputFile,
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
            call(job, {
              runtime: job.runtime,
              args: job.args ?? [],
              signal: ac.signal,
              payloadDigest: jobPayloadDigest(job),
            }),
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
