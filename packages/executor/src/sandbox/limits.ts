import { InvalidArgumentError } from '@digicap/capsule-core'
import { sanitizeProgramText } from '../errors.ts'
import { checkFilePayloadDigest } from './job-payload-digest.ts'
import type { OutputLimits, RuntimeKind, SandboxJob } from './types.ts'

export const DEFAULT_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_LOG_LINES = 200
export const DEFAULT_MAX_LOG_LINE_LENGTH = 2000
/** Largest memory limit a job may ask for (4 GiB, the wasm32 ceiling). */
export const MAX_MEMORY_LIMIT_BYTES = 4 * 1024 * 1024 * 1024
/**
 * Largest memory limit a QuickJS job may ask for: the QuickJS build declares at most 32768
 * pages (2 GiB) of linear memory, 256 of which its base takes (quickjs/worker.ts); a memory the
 * limit would make larger does not link, so such a job is refused before any worker starts.
 */
export const QUICKJS_MAX_MEMORY_LIMIT_BYTES = (32768 - 256) * 65536
const MAX_MEMORY_BY_KIND: Partial<Record<RuntimeKind, number>> = {
  quickjs: QUICKJS_MAX_MEMORY_LIMIT_BYTES,
}
/** Largest time limit a job may ask for (1 hour). */
export const MAX_TIME_LIMIT_MS = 60 * 60 * 1000

export interface ResolvedOutputLimits {
  readonly outputLimitBytes: number
  readonly maxLogLines: number
  readonly maxLogLineLength: number
}

export function resolveOutputLimits(init: OutputLimits | undefined): ResolvedOutputLimits {
  const r = {
    outputLimitBytes: init?.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES,
    maxLogLines: init?.maxLogLines ?? DEFAULT_MAX_LOG_LINES,
    maxLogLineLength: init?.maxLogLineLength ?? DEFAULT_MAX_LOG_LINE_LENGTH,
  }
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new InvalidArgumentError(`${k} must be a non-negative integer`, { details: { [k]: v } })
    }
  }
  return r
}

/** Check a job's shape and limits before anything is started. */
export function checkJob(job: SandboxJob, kind: RuntimeKind): void {
  if (job === null || typeof job !== 'object') {
    throw new InvalidArgumentError('job must be an object')
  }
  const rt = job.runtime
  if (rt === null || typeof rt !== 'object') {
    throw new InvalidArgumentError('job.runtime must be an object')
  }
  if (rt.kind !== kind) {
    throw new InvalidArgumentError('job.runtime.kind does not match this sandbox', {
      details: { expected: kind, got: String(rt.kind) },
    })
  }
  if (typeof rt.entry !== 'string') {
    throw new InvalidArgumentError('job.runtime.entry must be a string')
  }
  if (
    !Number.isSafeInteger(rt.memoryLimitBytes) ||
    rt.memoryLimitBytes <= 0 ||
    rt.memoryLimitBytes > MAX_MEMORY_LIMIT_BYTES
  ) {
    throw new InvalidArgumentError('job.runtime.memoryLimitBytes out of range', {
      details: { memoryLimitBytes: rt.memoryLimitBytes, max: MAX_MEMORY_LIMIT_BYTES },
    })
  }
  const kindMax = MAX_MEMORY_BY_KIND[kind]
  if (kindMax !== undefined && rt.memoryLimitBytes > kindMax) {
    throw new InvalidArgumentError(
      'job.runtime.memoryLimitBytes is above what this runtime can hold',
      {
        details: { memoryLimitBytes: rt.memoryLimitBytes, max: kindMax, runtime: kind },
        hint: `A ${kind} job may ask for at most ${kindMax} bytes of memory.`,
      },
    )
  }
  if (
    !Number.isSafeInteger(rt.timeLimitMs) ||
    rt.timeLimitMs <= 0 ||
    rt.timeLimitMs > MAX_TIME_LIMIT_MS
  ) {
    throw new InvalidArgumentError('job.runtime.timeLimitMs out of range', {
      details: { timeLimitMs: rt.timeLimitMs, max: MAX_TIME_LIMIT_MS },
    })
  }
  if (!(job.code instanceof Uint8Array)) {
    throw new InvalidArgumentError('job.code must be a Uint8Array')
  }
  if (!(job.input instanceof Uint8Array)) {
    throw new InvalidArgumentError('job.input must be a Uint8Array')
  }
  if (job.inputFile !== undefined) checkInputFile(job)
  if (job.args !== undefined) {
    if (!Array.isArray(job.args) || job.args.length > 64) {
      throw new InvalidArgumentError('job.args must be an array of at most 64 strings')
    }
    for (const a of job.args) {
      if (typeof a !== 'string' || a.length > 4096 || a.includes('\0')) {
        throw new InvalidArgumentError('job.args entries must be strings without NUL, ≤ 4096 chars')
      }
    }
  }
}

function checkInputFile(job: SandboxJob): void {
  const f = job.inputFile
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0
  if (
    f === null ||
    typeof f !== 'object' ||
    typeof f.path !== 'string' ||
    !f.path.startsWith('/') ||
    f.path.includes('\0') ||
    !count(f.offset) ||
    !count(f.size)
  ) {
    throw new InvalidArgumentError('job.inputFile must be { path (absolute), offset, size }')
  }
  checkFilePayloadDigest(job)
  if (job.input.byteLength !== 0) {
    throw new InvalidArgumentError('job.input must be empty when job.inputFile is given')
  }
}

/** Collects program log lines within bounds. */
export class LogCollector {
  readonly lines: string[] = []
  dropped = 0
  readonly #limits: ResolvedOutputLimits
  constructor(limits: ResolvedOutputLimits) {
    this.#limits = limits
  }
  push(line: string): void {
    if (this.lines.length >= this.#limits.maxLogLines) {
      this.dropped++
      return
    }
    this.lines.push(sanitizeProgramText(line, this.#limits.maxLogLineLength))
  }
}
