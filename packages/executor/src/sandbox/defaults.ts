/**
 * The standard sandbox set of an executor node: QuickJS, WASI, and `data` capsules answered
 * with a summary (size and SHA-256). Its environment measurement is what a policy's
 * `environment(...)` condition names for a stock executor.
 */
import { createHash } from 'node:crypto'
import { dataSandbox } from './data.ts'
import { quickjsSandbox } from './quickjs/sandbox.ts'
import type { SandboxSet } from './select.ts'
import { wasiSandbox } from './wasi/sandbox.ts'

/**
 * @example
 * ```ts
 * const executor = createExecutor({})({ libp2p, store, chain, signer, sandboxes: defaultSandboxes() })
 * const measurement = environmentMeasurement(defaultSandboxes())
 * ```
 */
export function defaultSandboxes(): SandboxSet {
  return {
    quickjs: quickjsSandbox(),
    wasi: wasiSandbox(),
    data: dataSandbox(async (bytes) =>
      JSON.stringify({
        bytes: bytes.byteLength,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      }),
    ),
  }
}
