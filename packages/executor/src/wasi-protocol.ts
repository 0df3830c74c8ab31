/** Messages between the WASI sandbox host and its worker (internal). */
export interface WasiWorkerData {
  readonly module: WebAssembly.Module
  readonly rootDir: string
  readonly stdoutPath: string
  readonly stderrPath: string
  readonly args: readonly string[]
  readonly capPages: number
  /** Most bytes the module may write to stdout. */
  readonly outputLimitBytes: number
  /** Most bytes the module may write through any descriptor (stdout, stderr, files). */
  readonly diskLimitBytes: number
}

export interface WasiWorkerResult {
  readonly exitCode: number | undefined
  /** Set when the module trapped (RuntimeError) or threw. */
  readonly trap: string | undefined
  /** Set when a write would have passed a limit; the module was stopped before it. */
  readonly limitHit: 'output' | 'disk' | undefined
  readonly memoryBytes: number
  readonly programMs: number
  readonly zeroedBytes: number
}
