import { SandboxRuntimeUnsupportedError } from '../errors.ts'
import type { RuntimeDescriptor, RuntimeKind, Sandbox } from './types.ts'

/** The sandboxes an executor offers, by kind. */
export type SandboxSet = Partial<Record<RuntimeKind, Sandbox>>

/**
 * Pick the sandbox for a capsule's runtime.
 * @throws SandboxRuntimeUnsupportedError when no sandbox of that kind is configured.
 * @example
 * ```ts
 * const sandbox = sandboxFor(job.runtime, { quickjs: quickjsSandbox(), wasi: wasiSandbox() })
 * ```
 */
export function sandboxFor(
  runtime: Pick<RuntimeDescriptor, 'kind'>,
  sandboxes: SandboxSet,
): Sandbox {
  const kind = runtime?.kind
  const s =
    kind === 'quickjs' || kind === 'wasi' || kind === 'data' || kind === 'oci'
      ? sandboxes[kind]
      : undefined
  if (!s) {
    throw new SandboxRuntimeUnsupportedError('No sandbox for this runtime kind', {
      details: { kind: String(kind), available: Object.keys(sandboxes) },
      hint: 'Configure a sandbox of this kind, or refuse the job before requesting access.',
    })
  }
  return s
}
