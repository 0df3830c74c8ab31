import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  SandboxCrashError,
  SandboxMemoryError,
  SandboxOutputLimitError,
  sanitizeProgramText,
} from './errors.ts'
import { checkJob, LogCollector, resolveOutputLimits } from './limits.ts'
import type {
  OutputLimits,
  Sandbox,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
} from './types.ts'
import type { WasiWorkerData, WasiWorkerResult } from './wasi-protocol.ts'
import { clampWasmMemory, compileWasiModule } from './wasm-limits.ts'
import { runWorker, siblingWorkerUrl, spawnWorker, workerSource } from './worker-host.ts'
import { createRunWorkspace, secretTmpRoot } from './workspace.ts'

/** The WASI runtime this package runs; part of every WASI run measurement. */
export const WASI_RUNTIME_ID = `node:wasi/preview1@${process.versions.node}`

export interface WasiSandboxInit extends OutputLimits {
  /**
   * Most bytes the module may write in one run, through any descriptor: stdout, stderr and
   * files it creates (default 64 MiB). Every write is metered; the file tree is also polled
   * (each entry counts 4 KiB) so that creating many empty files is bounded too.
   */
  readonly diskLimitBytes?: number | undefined
  /** How often the disk use is polled, in ms (default 25). */
  readonly diskPollMs?: number | undefined
  /** Time the host allows on top of `timeLimitMs` before terminating the worker (default 0). */
  readonly graceMs?: number | undefined
  /** Time allowed for the worker to start and instantiate the module (default 10 s). */
  readonly startupTimeoutMs?: number | undefined
  /** V8 heap cap of the worker thread, in MiB (default 64); linear memory is capped separately. */
  readonly workerHeapMb?: number | undefined
  /**
   * Where the preopened directory (which holds the decrypted `/input`) is made. Default
   * {@link secretTmpRoot}: `/dev/shm` (tmpfs, never on disk) when writable, else
   * `os.tmpdir()` with a warning through `warn`.
   */
  readonly tmpRoot?: string | undefined
  /** Told when no tmpfs is available for the preopened directory. */
  readonly warn?: ((message: string) => void) | undefined
  /** Keep one spare worker booted (no job seen) to skip worker start-up (default false). */
  readonly prewarm?: boolean | undefined
}

/**
 * A sandbox that runs a WASI preview-1 command module (`_start`) in a worker thread.
 *
 * The module sees one directory, preopened as `/`: a fresh 0700 temp directory holding
 * `/input` (the payload) and an empty `/out/` it may write to. `argv` is the entry name
 * followed by the job's `args`; the environment is empty; stdin is empty. Whatever the
 * module writes to stdout is the output; stderr lines become logs. There is no network
 * (preview 1 has no way to open a socket and none is preopened). Each memory the module
 * defines is capped at `memoryLimitBytes` by rewriting its declared maximum; the host
 * terminates the worker at the deadline.
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
  const diskPollMs = init.diskPollMs ?? 25
  const graceMs = init.graceMs ?? 0
  const startupTimeoutMs = init.startupTimeoutMs ?? 10_000
  const workerHeapMb = init.workerHeapMb ?? 64
  const workerUrl = siblingWorkerUrl('wasi-worker', import.meta.url)
  let wasiRoot: string | undefined = init.tmpRoot
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
    close: () => workers.close(),
    async run(job: SandboxJob, options: SandboxRunOptions = {}): Promise<SandboxResult> {
      checkJob(job, 'wasi')
      const t0 = performance.now()
      const { bytes, capPages } = clampWasmMemory(job.code, job.runtime.memoryLimitBytes)
      const module = await compileWasiModule(bytes)
      const own = options.workspace === undefined
      const ws = options.workspace ?? createRunWorkspace({ tmpRoot: init.tmpRoot })
      try {
        wasiRoot ??= secretTmpRoot(init.warn)
        const base = await ws.tempDir('wasi-', wasiRoot)
        const rootDir = join(base, 'root')
        await mkdir(rootDir, { mode: 0o700 })
        await writeFile(join(rootDir, 'input'), job.input, { mode: 0o600 })
        await mkdir(join(rootDir, 'out'), { mode: 0o700 })
        const stdoutPath = join(base, 'stdout')
        const stderrPath = join(base, 'stderr')
        const data: WasiWorkerData = {
          module,
          rootDir,
          stdoutPath,
          stderrPath,
          args: [job.runtime.entry, ...(job.args ?? [])],
          capPages,
          outputLimitBytes: limits.outputLimitBytes,
          diskLimitBytes,
        }
        const inputBytes = job.input.byteLength
        const res = (await runWorker({
          worker: workers.take(),
          job: data,
          startupTimeoutMs,
          timeLimitMs: job.runtime.timeLimitMs,
          graceMs,
          signal: options.signal,
          watch: {
            everyMs: diskPollMs,
            async check() {
              const used =
                (await treeBytes(rootDir)) -
                inputBytes +
                (await fileBytes(stdoutPath)) +
                (await fileBytes(stderrPath))
              if (used > diskLimitBytes) {
                return new SandboxOutputLimitError('Program wrote more bytes than allowed', {
                  details: { runtime: 'wasi', diskLimitBytes },
                })
              }
              const out = await fileBytes(stdoutPath)
              if (out > limits.outputLimitBytes) {
                return new SandboxOutputLimitError('Program output exceeded the limit', {
                  details: { runtime: 'wasi', outputLimitBytes: limits.outputLimitBytes },
                })
              }
              return undefined
            },
          },
        })) as WasiWorkerResult
        ws.recordZeroed(1, res.zeroedBytes)
        const logs = new LogCollector(limits)
        const err = await readBounded(stderrPath, 1024 * 1024)
        for (const line of new TextDecoder().decode(err).split('\n')) {
          if (line !== '') logs.push(line)
        }
        err.fill(0)
        const details = {
          runtime: 'wasi',
          timeLimitMs: job.runtime.timeLimitMs,
          memoryLimitBytes: job.runtime.memoryLimitBytes,
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
        const outSize = await fileBytes(stdoutPath)
        if (outSize > limits.outputLimitBytes) {
          throw new SandboxOutputLimitError('Program output exceeded the limit', {
            details: { ...details, outputLimitBytes: limits.outputLimitBytes },
          })
        }
        const output = await readFile(stdoutPath)
        return {
          output: new Uint8Array(output.buffer, output.byteOffset, output.byteLength),
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

async function fileBytes(p: string): Promise<number> {
  try {
    return (await stat(p)).size
  } catch {
    return 0
  }
}

async function treeBytes(dir: string): Promise<number> {
  let total = 0
  let entries: import('node:fs').Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    total += 4096
    if (e.isDirectory()) total += await treeBytes(p)
    else {
      try {
        total += (await lstat(p)).size
      } catch {
        // removed meanwhile
      }
    }
  }
  return total
}

async function readBounded(p: string, max: number): Promise<Uint8Array> {
  try {
    const b = await readFile(p)
    return b.byteLength > max ? b.subarray(b.byteLength - max) : b
  } catch {
    return new Uint8Array(0)
  }
}
