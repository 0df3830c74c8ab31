import { readFile } from 'node:fs/promises'
import { SandboxRuntimeUnsupportedError, sanitizeProgramText } from '../../errors.ts'
import { createRunWorkspace } from '../../run/workspace.ts'
import { checkJob, resolveOutputLimits } from '../limits.ts'
import type {
  OutputLimits,
  Sandbox,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from '../types.ts'
import {
  runWorker,
  sandboxWorkerUrl,
  spawnWorker,
  type WorkerSource,
  workerSource,
} from '../worker-host.ts'
import { failureToError } from './failures.ts'
import type {
  QuickJsBootData,
  QuickJsWorkerData,
  QuickJsWorkerResult,
  WorkerFailure,
} from './protocol.ts'

/** The QuickJS build this package runs; part of every QuickJS run measurement. */
export const QUICKJS_RUNTIME_ID = 'quickjs-emscripten@0.32.0/wasmfile-release-sync'

export interface QuickJsSandboxInit extends OutputLimits {
  /** QuickJS stack limit (default 512 KiB). Deep recursion past it fails with SANDBOX_MEMORY. */
  readonly stackLimitBytes?: number | undefined
  /** Time the host allows on top of `timeLimitMs` before terminating the worker (default 250 ms). */
  readonly graceMs?: number | undefined
  /** Time allowed for the worker to start and load QuickJS (default 10 s). */
  readonly startupTimeoutMs?: number | undefined
  /** V8 heap cap of the worker thread, in MiB (default 64); the QuickJS heap lives outside it. */
  readonly workerHeapMb?: number | undefined
  /**
   * Keep one spare worker booted (QuickJS loaded, no job seen) so a run skips the worker
   * start-up (default false). The spare is unref'd; call `close()` to end it.
   */
  readonly prewarm?: boolean | undefined
}

/**
 * A sandbox that runs JavaScript in QuickJS compiled to WebAssembly, inside a worker
 * thread that the host terminates if the in-VM limits fail to stop the program.
 *
 * The entry is a classic script, run in strict mode. It sees the standard ECMAScript
 * built-ins and one host object, `digicap`:
 * - `digicap.input()` → a fresh `ArrayBuffer` copy of the payload data (RangeError when the
 *   data is larger than the memory limit: read it by chunks);
 * - `digicap.inputText()` → the payload decoded as UTF-8 (same bound);
 * - `digicap.inputSize` → the data's length in bytes;
 * - `digicap.read(offset, length)` → an `ArrayBuffer` of at most `length` bytes (and at most
 *   16 MiB) from `offset`, shorter at the end, empty past it: a payload of any size read by
 *   chunks (a job with `inputFile` — the executor streamed the payload to a tmpfs file,
 *   ADR 0035 — is read from that file, never held whole in the host);
 * - `digicap.output(x)` → appends a string (UTF-8), `ArrayBuffer` or typed array to the output;
 * - `digicap.log(...args)` → one log line (bounded);
 * - `digicap.args` → the job's `args` (frozen array of strings).
 * Nothing else: no `require`, `import`, `process`, `fetch`, timers, file system or network.
 *
 * @example
 * ```ts
 * const sandbox = quickjsSandbox()
 * const code = new TextEncoder().encode('digicap.output(String(digicap.input().byteLength))')
 * const { output } = await sandbox.run({
 *   runtime: { kind: 'quickjs', entry: 'main.js', memoryLimitBytes: 32 << 20, timeLimitMs: 1000 },
 *   code,
 *   input: new Uint8Array([1, 2, 3]),
 * })
 * ```
 */
export function quickjsSandbox(init: QuickJsSandboxInit = {}): Sandbox {
  const limits = resolveOutputLimits(init)
  const stackLimitBytes = init.stackLimitBytes ?? 512 * 1024
  const graceMs = init.graceMs ?? 250
  const startupTimeoutMs = init.startupTimeoutMs ?? 10_000
  const workerHeapMb = init.workerHeapMb ?? 64
  let compiled: Promise<WebAssembly.Module> | undefined
  const wasmModule = () => {
    compiled ??= readFile(
      new URL(import.meta.resolve('@jitl/quickjs-wasmfile-release-sync/wasm')),
    ).then((bytes) => WebAssembly.compile(bytes))
    return compiled
  }
  const workerUrl = sandboxWorkerUrl('quickjs', import.meta.url)
  let source: WorkerSource | undefined
  const workers = async () => {
    if (!source) {
      const boot: QuickJsBootData = { wasmModule: await wasmModule() }
      source ??= workerSource(
        () =>
          spawnWorker({
            url: workerUrl,
            bootData: boot,
            resourceLimits: {
              maxOldGenerationSizeMb: workerHeapMb,
              maxYoungGenerationSizeMb: 16,
              stackSizeMb: 4,
            },
          }),
        init.prewarm === true,
      )
    }
    return source
  }

  return {
    kind: 'quickjs',
    runtimeId: QUICKJS_RUNTIME_ID,
    readsInputFile: true,
    async close() {
      await source?.close()
    },
    async run(job: SandboxJob, options: SandboxRunOptions = {}): Promise<SandboxResult> {
      checkJob(job, 'quickjs')
      let text: string
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(job.code)
      } catch {
        throw new SandboxRuntimeUnsupportedError('QuickJS entry is not valid UTF-8', {
          details: { entry: job.runtime.entry },
        })
      }
      const t0 = performance.now()
      const own = options.workspace === undefined
      const ws = options.workspace ?? createRunWorkspace()
      try {
        const data: QuickJsWorkerData = {
          source: text,
          entry: job.runtime.entry,
          input: job.input,
          ...(job.inputFile
            ? {
                inputFile: {
                  path: job.inputFile.path,
                  offset: job.inputFile.offset,
                  size: job.inputFile.size,
                },
              }
            : {}),
          args: job.args ?? [],
          memoryLimitBytes: job.runtime.memoryLimitBytes,
          stackLimitBytes,
          timeLimitMs: job.runtime.timeLimitMs,
          ...limits,
        }
        const res = (await runWorker({
          worker: (await workers()).take(),
          job: data,
          startupTimeoutMs,
          timeLimitMs: job.runtime.timeLimitMs,
          graceMs,
          signal: options.signal,
          stopError: (f) =>
            failureToError(f as WorkerFailure, {
              runtime: 'quickjs',
              timeLimitMs: job.runtime.timeLimitMs,
              memoryLimitBytes: job.runtime.memoryLimitBytes,
            }),
        })) as QuickJsWorkerResult
        ws.recordZeroed(res.zeroed.buffers, res.zeroed.bytes)
        if (!res.ok) {
          throw failureToError(res.failure, {
            runtime: 'quickjs',
            timeLimitMs: job.runtime.timeLimitMs,
            memoryLimitBytes: job.runtime.memoryLimitBytes,
          })
        }
        return {
          output: res.output,
          // Untrusted text: no control or bidi characters reach the caller's logs.
          logs: res.logs.map((l) => sanitizeProgramText(l, limits.maxLogLineLength + 1)),
          stats: {
            wallMs: performance.now() - t0,
            programMs: res.programMs,
            droppedLogLines: res.droppedLogLines,
          },
        }
      } finally {
        if (own) await ws.dispose()
      }
    },
  }
}
