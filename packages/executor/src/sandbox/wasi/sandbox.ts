import {
  SandboxCrashError,
  SandboxMemoryError,
  SandboxOutputLimitError,
  SandboxTimeoutError,
  sanitizeProgramText,
} from '../../errors.ts'
import { createRunWorkspace } from '../../run/workspace.ts'
import { checkJob, LogCollector, resolveOutputLimits } from '../limits.ts'
import type {
  OutputLimits,
  Sandbox,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from '../types.ts'
import { runWorker, sandboxWorkerUrl, spawnWorker, workerSource } from '../worker-host.ts'
import type { WasiWorkerData, WasiWorkerResult } from './protocol.ts'
import { clampWasmMemory, compileWasiModule } from './wasm-limits.ts'

/** The WASI runtime this package runs; part of every WASI run measurement. */
export const WASI_RUNTIME_ID = 'digicap-wasi-memfs/preview1@1+browser_wasi_shim@0.4.2'

export interface WasiSandboxInit extends OutputLimits {
  /**
   * Most bytes the module may write in one run, through any descriptor: stdout, stderr and
   * files it creates (default 64 MiB). Every write, every byte a file grows by and every
   * entry created (4 KiB each, plus its name's bytes) is metered; the module is stopped before
   * passing the limit. The files live in the worker's memory, so this also bounds that
   * memory. A path over 4096 bytes is refused (ENAMETOOLONG) by every path call.
   */
  readonly diskLimitBytes?: number | undefined
  /** Time the host allows on top of `timeLimitMs` before terminating the worker (default 0). */
  readonly graceMs?: number | undefined
  /** Time allowed for the worker to start and instantiate the module (default 10 s). */
  readonly startupTimeoutMs?: number | undefined
  /** V8 heap cap of the worker thread, in MiB (default 64); linear memory is capped separately. */
  readonly workerHeapMb?: number | undefined
  /** Keep one spare worker booted (no job seen) to skip worker start-up (default false). */
  readonly prewarm?: boolean | undefined
}

/**
 * A sandbox that runs a WASI preview-1 command module (`_start`) in a worker thread,
 * against Digicap's own WASI host: every system call is answered in JavaScript over an
 * in-memory file system, so no host path is in reach and no call can block.
 *
 * The module sees one directory, preopened as `/`, holding `/input` (the payload) and an
 * empty `/out/` it may write to, both in the worker's memory (nothing is written to disk).
 * `argv` is the entry name followed by the job's `args`; the environment is empty; stdin
 * is empty. Whatever the module writes to stdout is the output; stderr lines become logs.
 * There is no network (preview 1 has no way to open a socket; the socket calls answer
 * ENOTSUP). Each memory the module defines is capped at `memoryLimitBytes` by rewriting its
 * declared maximum. A `poll_oneoff` sleep that would end past the deadline fails the run
 * with SANDBOX_TIMEOUT at once; any other program is terminated by the host at the
 * deadline. The decrypted input is handed to the worker in a shared buffer that the run's
 * workspace zeroes whatever happened to the worker — or, for a job with `inputFile` (the
 * executor streamed the payload to a tmpfs file, ADR 0035), `/input` is that file, read-only,
 * read by the module's `fd_read`/`fd_pread` calls straight into its memory in its own chunk
 * sizes; the run's workspace wipes and removes the file whatever happened to the worker.
 *
 * @example
 * ```ts
 * const sandbox = wasiSandbox()
 * const { output } = await sandbox.run({
 *   runtime: { kind: 'wasi', entry: 'main.wasm', memoryLimitBytes: 16 << 20, timeLimitMs: 2000 },
 *   code: wasmBytes,
 *   input: payload,
 * })
 * ```
 */
export function wasiSandbox(init: WasiSandboxInit = {}): Sandbox {
  const limits = resolveOutputLimits(init)
  const diskLimitBytes = init.diskLimitBytes ?? 64 * 1024 * 1024
  const graceMs = init.graceMs ?? 0
  const startupTimeoutMs = init.startupTimeoutMs ?? 10_000
  const workerHeapMb = init.workerHeapMb ?? 64
  const workerUrl = sandboxWorkerUrl('wasi', import.meta.url)
  const workers = workerSource(
    () =>
      spawnWorker({
        url: workerUrl,
        bootData: null,
        resourceLimits: {
          maxOldGenerationSizeMb: workerHeapMb,
          maxYoungGenerationSizeMb: 16,
          stackSizeMb: 4,
        },
        execArgv: ['--disable-warning=ExperimentalWarning'],
      }),
    init.prewarm === true,
  )

  return {
    kind: 'wasi',
    runtimeId: WASI_RUNTIME_ID,
    readsInputFile: true,
    close: () => workers.close(),
    async run(job: SandboxJob, options: SandboxRunOptions = {}): Promise<SandboxResult> {
      checkJob(job, 'wasi')
      const t0 = performance.now()
      const { bytes, capPages } = clampWasmMemory(job.code, job.runtime.memoryLimitBytes)
      const module = await compileWasiModule(bytes)
      const own = options.workspace === undefined
      const ws = options.workspace ?? createRunWorkspace()
      try {
        // Shared, so the workspace can zero the worker's view of the plaintext even when
        // the worker had to be terminated mid-run.
        const input = new SharedArrayBuffer(job.input.byteLength)
        const inputView = new Uint8Array(input)
        ws.trackBuffer(inputView)
        inputView.set(job.input)
        const file = job.inputFile
        const data: WasiWorkerData = {
          module,
          input,
          // ADR 0035: the run's plaintext file, read by the module's fd_read calls in chunks.
          ...(file ? { inputFile: { path: file.path, offset: file.offset, size: file.size } } : {}),
          args: [job.runtime.entry, ...(job.args ?? [])],
          capPages,
          outputLimitBytes: limits.outputLimitBytes,
          diskLimitBytes,
          stderrLimitBytes: STDERR_LIMIT_BYTES,
          timeLimitMs: job.runtime.timeLimitMs,
        }
        const res = (await runWorker({
          worker: workers.take(),
          job: data,
          startupTimeoutMs,
          timeLimitMs: job.runtime.timeLimitMs,
          graceMs,
          signal: options.signal,
        })) as WasiWorkerResult
        ws.recordZeroed(1, res.zeroedBytes)
        const logs = new LogCollector(limits)
        for (const line of new TextDecoder().decode(res.stderr).split('\n')) {
          if (line !== '') logs.push(line)
        }
        res.stderr.fill(0)
        const details = {
          runtime: 'wasi',
          timeLimitMs: job.runtime.timeLimitMs,
          memoryLimitBytes: job.runtime.memoryLimitBytes,
        }
        if (res.limitHit === 'time') {
          throw new SandboxTimeoutError('Program would sleep past its time limit; stopped', {
            details: { ...details, enforcedBy: 'sandbox' },
          })
        }
        if (res.limitHit === 'output') {
          throw new SandboxOutputLimitError('Program output exceeded the limit', {
            details: { ...details, outputLimitBytes: limits.outputLimitBytes },
          })
        }
        if (res.limitHit === 'disk') {
          throw new SandboxOutputLimitError('Program wrote more bytes than allowed', {
            details: { ...details, diskLimitBytes },
          })
        }
        if (res.trap !== undefined) {
          if (res.memoryBytes >= (capPages - 1) * 65536 && /memory|unreachable/i.test(res.trap)) {
            throw new SandboxMemoryError('Program trapped at its memory limit', {
              details: { ...details, memoryBytes: res.memoryBytes, limit: 'linear-memory' },
            })
          }
          throw new SandboxCrashError('Program trapped', {
            details: { ...details, programMessage: sanitizeProgramText(res.trap) },
          })
        }
        if (res.exitCode !== 0) {
          throw new SandboxCrashError('Program exited with a non-zero status', {
            details: { ...details, exitCode: res.exitCode },
          })
        }
        return {
          output: res.output,
          logs: logs.lines,
          stats: {
            wallMs: performance.now() - t0,
            programMs: res.programMs,
            memoryPeakBytes: res.memoryBytes,
            droppedLogLines: logs.dropped,
          },
        }
      } finally {
        if (own) await ws.dispose()
      }
    },
  }
}

/** Stderr bytes kept for the logs (the log collector bounds lines further). */
const STDERR_LIMIT_BYTES = 1024 * 1024
