/**
 * The run measurement, version 2 (docs/bundle.md §7, ADR 0059): the SHA-256 digests that
 * identify one run — which runtime, which code, which data. The executor signs `run` in its
 * result deliveries and a verifier recomputes it, so the derivation lives here, once.
 */
import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import { InvalidArgumentError } from '../errors.ts'
import { payloadDigest } from './payload-digest.ts'

/** The run measurement's version: 2 since the payload digest is the leaves' (ADR 0059). */
export const RUN_MEASUREMENT_VERSION = 2
/**
 * The domain string before `runtime ‖ code ‖ payload` in version 2's `run`. Version 1 hashed
 * exactly those 96 bytes; version 2 hashes 122, so no value of one is a value of the other.
 */
export const RUN_MEASUREMENT_LABEL = 'digicap/v2 run measurement'

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
  /**
   * The payload digest (version 2) of the capsule's plaintext — the data, or a bundle's whole
   * encoding — cut at the header's chunk size: `payloadDigest` of capsule-core.
   */
  readonly payload: Uint8Array
  /** SHA-256("digicap/v2 run measurement" ‖ runtime ‖ code ‖ payload): the one value a run is signed under. */
  readonly run: Uint8Array
  /** {@link RUN_MEASUREMENT_VERSION}. */
  readonly version: typeof RUN_MEASUREMENT_VERSION
}

/** What {@link runtimeMeasurement} measures. */
export interface RuntimeMeasurementParameters {
  /** The sandbox's `runtimeId` (engine and version). */
  readonly runtimeId: string
  readonly runtime: MeasuredRuntime
  readonly code: Uint8Array
  /**
   * The capsule's plaintext, in memory, with `chunkSize` (or give its digest as
   * `payloadDigest`).
   */
  readonly input?: Uint8Array | undefined
  /** The capsule header's `payload.chunkSize`, with `input`. */
  readonly chunkSize?: number | undefined
  /**
   * The plaintext's payload digest, as the opener computed it from the commitment's leaves
   * (`PayloadOpener.payloadDigest()`). Exactly one of `input`, `payloadDigest`.
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
 *
 * @throws {InvalidArgumentError} unless exactly one of `input` (with `chunkSize`) and
 *   `payloadDigest` (32 bytes) is given.
 * @example
 * ```ts
 * const m = runtimeMeasurement({ runtimeId, runtime, code, input: plaintext, chunkSize: header.payload.chunkSize })
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
  if (p.input !== undefined && p.chunkSize === undefined) {
    throw new InvalidArgumentError('Give the capsule’s chunkSize with input', {
      hint: 'The payload digest hashes the data chunk by chunk, at the header’s chunk size.',
    })
  }
  const payload =
    p.payloadDigest?.slice() ?? payloadDigest(p.input as Uint8Array, p.chunkSize as number)
  const run = sha256(LABEL_BYTES, runtime, code, payload)
  return { runtime, code, payload, run, version: RUN_MEASUREMENT_VERSION }
}

const LABEL_BYTES = new TextEncoder().encode(RUN_MEASUREMENT_LABEL)

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
