import { SandboxRuntimeUnsupportedError } from '../errors.ts'
import type { RuntimeDescriptor, RuntimeKind } from './types.ts'

/**
 * The capsule header's `runtime` field as capsule-core decodes it (`RuntimeRequirements`):
 * the limits are optional there; the executor fills them in from its own policy.
 */
export interface RuntimeRequirementsLike {
  readonly kind: string
  readonly entry?: string | undefined
  readonly memoryLimit?: number | undefined
  readonly timeLimit?: number | undefined
}

/** What this executor grants: defaults for unset limits and the most it accepts. */
export interface RuntimePolicy {
  readonly defaultMemoryLimitBytes: number
  readonly maxMemoryLimitBytes: number
  readonly defaultTimeLimitMs: number
  readonly maxTimeLimitMs: number
  /** Runtime kinds this executor runs (default: all four; a kind also needs its sandbox). */
  readonly kinds?: readonly RuntimeKind[] | undefined
}

/** A conservative default: 64 MiB and 10 s unless asked, at most 512 MiB and 5 minutes. */
export const DEFAULT_RUNTIME_POLICY: RuntimePolicy = {
  defaultMemoryLimitBytes: 64 * 1024 * 1024,
  maxMemoryLimitBytes: 512 * 1024 * 1024,
  defaultTimeLimitMs: 10_000,
  maxTimeLimitMs: 5 * 60_000,
}

/**
 * Turn the header's runtime requirements into the descriptor a sandbox runs with. A
 * request above the executor's maximum is refused, not silently lowered: the owner asked
 * for that much, and the executor should decline the job before requesting access.
 * @throws SandboxRuntimeUnsupportedError for an unknown or disabled kind, a missing
 *   entry, or limits out of the policy's range.
 * @example
 * ```ts
 * const runtime = resolveRuntime(header.runtime, DEFAULT_RUNTIME_POLICY)
 * ```
 */
export function resolveRuntime(
  req: RuntimeRequirementsLike,
  policy: RuntimePolicy = DEFAULT_RUNTIME_POLICY,
): RuntimeDescriptor {
  const kinds = policy.kinds ?? ['quickjs', 'wasi', 'data', 'oci']
  const kind = req?.kind as RuntimeKind
  if (!kinds.includes(kind)) {
    throw new SandboxRuntimeUnsupportedError('This executor does not run that runtime kind', {
      details: { kind: String(req?.kind).slice(0, 32), available: kinds },
    })
  }
  const entry = req.entry ?? ''
  if (kind !== 'data' && entry === '') {
    throw new SandboxRuntimeUnsupportedError('A code runtime needs an entry', { details: { kind } })
  }
  const memoryLimitBytes = req.memoryLimit ?? policy.defaultMemoryLimitBytes
  const timeLimitMs = req.timeLimit ?? policy.defaultTimeLimitMs
  if (
    !Number.isSafeInteger(memoryLimitBytes) ||
    memoryLimitBytes <= 0 ||
    memoryLimitBytes > policy.maxMemoryLimitBytes
  ) {
    throw new SandboxRuntimeUnsupportedError(
      'Requested memory limit is outside this executor’s range',
      {
        details: { memoryLimit: memoryLimitBytes, max: policy.maxMemoryLimitBytes },
      },
    )
  }
  if (
    !Number.isSafeInteger(timeLimitMs) ||
    timeLimitMs <= 0 ||
    timeLimitMs > policy.maxTimeLimitMs
  ) {
    throw new SandboxRuntimeUnsupportedError(
      'Requested time limit is outside this executor’s range',
      {
        details: { timeLimit: timeLimitMs, max: policy.maxTimeLimitMs },
      },
    )
  }
  return { kind, entry, memoryLimitBytes, timeLimitMs }
}
