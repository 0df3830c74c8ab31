/** Messages between the WASI sandbox host and its worker (internal). */
export interface WasiWorkerData {
  readonly module: WebAssembly.Module
  /** The decrypted input, shared so the host can zero it even if the worker is killed. */
  readonly input: SharedArrayBuffer
  /**
   * Or the run's plaintext file (ADR 0035): `/input` reads `size` bytes of it from `offset`,
   * through a read-only descriptor the worker opens; `input` is then empty.
   */
  readonly inputFile?:
    | { readonly path: string; readonly offset: number; readonly size: number }
    | undefined
  readonly args: readonly string[]
  readonly capPages: number
  /** Most bytes the module may write to stdout. */
  readonly outputLimitBytes: number
  /** Most bytes the module may write through any descriptor (stdout, stderr, files). */
  readonly diskLimitBytes: number
  /** Most stderr bytes kept for the logs. */
  readonly stderrLimitBytes: number
  /** The program's time limit; no WASI call may wait past it. */
  readonly timeLimitMs: number
}

export interface WasiWorkerResult {
  readonly exitCode: number | undefined
  /** Set when the module trapped (RuntimeError) or threw. */
  readonly trap: string | undefined
  /** Set when the module was stopped before passing a limit (or sleeping past its deadline). */
  readonly limitHit: 'output' | 'disk' | 'time' | undefined
  /** What the module wrote to stdout (empty unless it exited normally). */
  readonly output: Uint8Array
  /** The first bytes it wrote to stderr. */
  readonly stderr: Uint8Array
  readonly memoryBytes: number
  readonly programMs: number
  readonly zeroedBytes: number
}
