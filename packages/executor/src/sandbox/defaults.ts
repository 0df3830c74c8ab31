/**
 * The standard sandbox set of an executor node: QuickJS, WASI, and `data` capsules answered
 * with a summary (size and the run measurement's payload digest). Its environment measurement
 * is what a policy's `environment(...)` condition names for a stock executor.
 */
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
    // The digest is the one the open computed for the run measurement (ADR 0059): the payload
    // is not read a second time, in memory or in a file (ADR 0035).
    data: dataSandbox((bytes, ctx) => summary(bytes.byteLength, ctx.payloadDigest), {
      fromFile: (file, ctx) => summary(file.size, ctx.payloadDigest),
    }),
  }
}

const summary = (bytes: number, payloadDigest: Uint8Array) =>
  JSON.stringify({ bytes, payloadDigest: Buffer.from(payloadDigest).toString('hex') })
