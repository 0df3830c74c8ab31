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
    data: dataSandbox(
      (bytes) => summary(bytes.byteLength, createHash('sha256').update(bytes).digest()),
      // Streamed to a file (ADR 0035): the digest is the one the open computed for the run
      // measurement, so the payload is not read a second time.
      { fromFile: (file) => summary(file.size, file.sha256) },
    ),
  }
}

const summary = (bytes: number, sha256: Uint8Array) =>
  JSON.stringify({ bytes, sha256: Buffer.from(sha256).toString('hex') })
