import type { RuntimeKind as HeaderRuntimeKind } from '@digicap/capsule-core'
import type { RunWorkspace } from '../run/workspace.ts'

/**
 * Which sandbox runs the capsule's code: the header's runtime kinds (capsule-core, the one
 * list). `oci` is an image capsule run under runc (`ociSandbox`, `@digicap/oci`).
 */
export type RuntimeKind = HeaderRuntimeKind

/**
 * The runtime a capsule asks for (mirrors the capsule header's runtime field): the kind,
 * the entry file inside the bundle, and the limits the run must stay within.
 */
export interface RuntimeDescriptor {
  readonly kind: RuntimeKind
  /** Name of the entry file in the bundle (`main.js`, `main.wasm`); informative for `data`. */
  readonly entry: string
  /** Heap limit (QuickJS) or linear-memory cap (WASI). */
  readonly memoryLimitBytes: number
  /** Wall-clock limit for the program itself (start-up of the sandbox is not counted). */
  readonly timeLimitMs: number
}

/**
 * A job's payload data in a file instead of memory (ADR 0035): the run's plaintext file on a
 * tmpfs, written by the streaming open, read by the sandbox in chunks, wiped and removed by the
 * run's workspace whatever happens to the sandbox.
 */
export interface JobInputFile {
  /** Absolute path of the plaintext file (0600, in the run's private directory). */
  readonly path: string
  /** Where the data starts in the file (after a code+data bundle's prefix). */
  readonly offset: number
  /** The data's length in bytes. */
  readonly size: number
  /**
   * The file as the open left it; the run refuses a file that differs (ADR 0055). Absent for a
   * file the caller wrote itself.
   */
  readonly stamp?: PlaintextFileStamp | undefined
}

/** A file's identity, size and times (`fstat`, nanoseconds), to see any change since. */
export interface PlaintextFileStamp {
  readonly dev: bigint
  readonly ino: bigint
  readonly size: bigint
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint
}

/** One run: the runtime, the entry file's bytes and the payload's (plaintext) data. */
export interface SandboxJob {
  readonly runtime: RuntimeDescriptor
  /** The entry file's bytes (JavaScript source as UTF-8, or a WASI module). Empty for `data`. */
  readonly code: Uint8Array
  /** The plaintext payload (or the data part of a code+data bundle); empty with `inputFile`. */
  readonly input: Uint8Array
  /**
   * The run measurement's payload digest (version 2, capsule-core `payloadDigest`) of the
   * capsule's whole plaintext, as the open computed it from the commitment's leaves (ADR 0059).
   * Required with `inputFile`. Omitted (a job not opened from a capsule): the run measures
   * `input` as a plaintext cut at capsule-core's `DEFAULT_CHUNK_SIZE`.
   */
  readonly payloadDigest?: Uint8Array | undefined
  /**
   * The payload data in a file (only for a sandbox whose `readsInputFile` is true); `input` is
   * then empty.
   */
  readonly inputFile?: JobInputFile | undefined
  /** Extra arguments: `argv[1..]` for WASI, `digicap.args` for QuickJS. Plain strings only. */
  readonly args?: readonly string[] | undefined
  /**
   * The capsule's id and released data key, for runtimes that open more than the payload
   * (`oci`: the image's layer options). Zeroed with the run's workspace by the executor.
   */
  readonly capsuleKey?: { readonly capsuleId: Uint8Array; readonly dataKey: Uint8Array } | undefined
}

export interface SandboxStats {
  /** Wall time of the whole run as the host saw it, sandbox start-up included. */
  readonly wallMs: number
  /** Wall time of the program alone (from entry start to its end), as the sandbox saw it. */
  readonly programMs?: number | undefined
  /** Peak memory the program used, when the runtime can tell (WASI: linear memory size). */
  readonly memoryPeakBytes?: number | undefined
  /** Log lines the program wrote past the log limit and that were dropped. */
  readonly droppedLogLines?: number | undefined
}

export interface SandboxResult {
  readonly output: Uint8Array
  /** What the program logged (QuickJS `digicap.log`, WASI stderr lines); bounded. */
  readonly logs: readonly string[]
  readonly stats: SandboxStats
}

export interface SandboxRunOptions {
  /** Aborting tears the sandbox down and rejects with `SandboxAbortedError`. */
  readonly signal?: AbortSignal | undefined
  /**
   * Where the run's temp files, buffers and handles are tracked for clean-up. When omitted,
   * the sandbox uses a private workspace and disposes of it before returning.
   */
  readonly workspace?: RunWorkspace | undefined
}

/** A sandbox runs one kind of runtime. Implementations hold no state between runs. */
export interface Sandbox {
  readonly kind: RuntimeKind
  /** Identifies the runtime build (engine and version); part of the run measurement. */
  readonly runtimeId: string
  /** True when it reads `job.inputFile` (the payload streamed to a tmpfs file, ADR 0035). */
  readonly readsInputFile?: boolean | undefined
  /**
   * Run a job.
   * @throws SandboxTimeoutError | SandboxMemoryError | SandboxCrashError |
   *   SandboxOutputLimitError | SandboxRuntimeUnsupportedError | SandboxAbortedError |
   *   InvalidArgumentError
   */
  run(job: SandboxJob, options?: SandboxRunOptions): Promise<SandboxResult>
  /** Release what the sandbox keeps between runs (a prewarmed spare worker). Idempotent. */
  close(): Promise<void>
}

/** Output and log bounds shared by the code sandboxes. */
export interface OutputLimits {
  /** Largest output accepted (default 16 MiB). */
  readonly outputLimitBytes?: number | undefined
  /** Most log lines kept (default 200); further lines are counted in `droppedLogLines`. */
  readonly maxLogLines?: number | undefined
  /** Longest log line kept, in characters (default 2000); longer lines are cut. */
  readonly maxLogLineLength?: number | undefined
}
