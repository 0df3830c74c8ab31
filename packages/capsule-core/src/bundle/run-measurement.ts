/**
 * The run measurement (docs/bundle.md §7): the SHA-256 digests that identify one run — which
 * runtime, which code, which data. The executor extends PCR 23 with them and a verifier
 * recomputes them, so the derivation lives here, once.
 */
import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import { InvalidArgumentError } from '../errors.ts'

/** The runtime fields a run measurement binds (the executor's `RuntimeDescriptor` fits). */
export interface MeasuredRuntime {
  readonly kind: string
  readonly entry: string
  readonly memoryLimitBytes: number
  readonly timeLimitMs: number
}

/** SHA-256 digests that identify one run; the attestation agent extends PCR 23 with them. */
export interface RunMeasurements {
  /** SHA-256 of the canonical CBOR map {id, kind, entry, memoryLimitBytes, timeLimitMs}. */
  readonly runtime: Uint8Array
  /** SHA-256 of the entry file's bytes. */
  readonly code: Uint8Array
  /** SHA-256 of the payload data handed to the program. */
  readonly payload: Uint8Array
  /** SHA-256(runtime ‖ code ‖ payload): the one value to extend a PCR with. */
  readonly run: Uint8Array
}

/** What {@link runtimeMeasurement} measures. */
export interface RuntimeMeasurementParameters {
  /** The sandbox's `runtimeId` (engine and version). */
  readonly runtimeId: string
  readonly runtime: MeasuredRuntime
  readonly code: Uint8Array
  /** The payload data handed to the program (or give its digest as `payloadDigest`). */
  readonly input?: Uint8Array | undefined
  /**
   * SHA-256 of the payload data, when the data is not in memory (an executor that streamed it
   * to a file hashed it on the way). Exactly one of `input`, `payloadDigest`.
   */
  readonly payloadDigest?: Uint8Array | undefined
}

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/**
 * Measure a run before it starts: which runtime, which code, which data.
 * The encoding is fixed (docs/bundle.md, "Run measurement") so a verifier can recompute it.
 * @example
 * ```ts
 * const m = runtimeMeasurement({ runtimeId: sandbox.runtimeId, runtime: job.runtime, code: job.code, input: job.input })
 * ```
 */
export function runtimeMeasurement(p: RuntimeMeasurementParameters): RunMeasurements {
  const runtime = runtimeDigest(p.runtimeId, p.runtime)
  const code = sha256(p.code)
  if ((p.input === undefined) === (p.payloadDigest === undefined)) {
    throw new InvalidArgumentError('Give exactly one of input, payloadDigest')
  }
  if (p.payloadDigest !== undefined && p.payloadDigest.length !== 32) {
    throw new InvalidArgumentError('payloadDigest must be 32 bytes')
  }
  const payload = p.payloadDigest?.slice() ?? sha256(p.input as Uint8Array)
  return { runtime, code, payload, run: sha256(runtime, code, payload) }
}

/**
 * The runtime digest alone: SHA-256 of the canonical CBOR map {id, kind, entry,
 * memoryLimitBytes, timeLimitMs}. Known as soon as the header is verified and the sandbox
 * chosen, so before any grant (ADR 0021).
 */
export function runtimeDigest(runtimeId: string, runtime: MeasuredRuntime): Uint8Array {
  return sha256(
    encode({
      id: runtimeId,
      kind: runtime.kind,
      entry: runtime.entry,
      memoryLimitBytes: runtime.memoryLimitBytes,
      timeLimitMs: runtime.timeLimitMs,
    }),
  )
}

/**
 * The measurement an attested executor's access request carries (ADR 0021):
 * SHA-256(runtime digest ‖ capsule header hash), both 32 bytes. It is bound into the grant
 * id, and PCR 23's event log opens it: its `runtime` and `capsule-header` events are the two
 * halves, its `grant` and `ephemeral-key` events what the grant added.
 *
 * @throws {InvalidArgumentError} either value is not 32 bytes.
 */
export function requestMeasurement(runtime: Uint8Array, capsuleHeaderHash: Uint8Array): Uint8Array {
  for (const [name, v] of [
    ['runtimeDigest', runtime],
    ['capsuleHeaderHash', capsuleHeaderHash],
  ] as const) {
    if (!(v instanceof Uint8Array) || v.length !== 32) {
      throw new InvalidArgumentError(`${name} must be 32 bytes`, { details: { name } })
    }
  }
  return sha256(runtime, capsuleHeaderHash)
}
