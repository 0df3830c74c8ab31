/** Messages between the QuickJS sandbox host and its worker (internal). */
/** Sent at spawn: what the worker needs to boot before any job exists. */
export interface QuickJsBootData {
  readonly wasmModule: WebAssembly.Module
}

/** Sent with the job message. */
export interface QuickJsWorkerData {
  readonly source: string
  readonly entry: string
  readonly input: Uint8Array
  /** Or the run's plaintext file (ADR 0035): `size` bytes from `offset`; `input` is empty. */
  readonly inputFile?:
    | { readonly path: string; readonly offset: number; readonly size: number }
    | undefined
  readonly args: readonly string[]
  readonly memoryLimitBytes: number
  readonly stackLimitBytes: number
  readonly timeLimitMs: number
  readonly outputLimitBytes: number
  readonly maxLogLines: number
  readonly maxLogLineLength: number
}

export interface WorkerFailure {
  readonly code: 'SANDBOX_TIMEOUT' | 'SANDBOX_MEMORY' | 'SANDBOX_CRASH' | 'SANDBOX_OUTPUT_LIMIT'
  readonly message: string
  readonly details?: Record<string, unknown>
  /** Untrusted text from the program; sanitized by the host. */
  readonly programMessage?: string
}

export type QuickJsWorkerResult = (
  | { readonly ok: true; readonly output: Uint8Array }
  | { readonly ok: false; readonly failure: WorkerFailure }
) & {
  readonly logs: readonly string[]
  readonly droppedLogLines: number
  readonly programMs: number
  readonly zeroed: { readonly buffers: number; readonly bytes: number }
}
