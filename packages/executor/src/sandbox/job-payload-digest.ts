/**
 * A job's payload digest as its run is measured (ADR 0059): the open's, from the capsule's
 * commitment leaves; for a job not opened from a capsule, its `input` taken as a capsule
 * plaintext at capsule-core's default chunk size.
 */
import { DEFAULT_CHUNK_SIZE, InvalidArgumentError, payloadDigest } from '@digicap/capsule-core'
import type { SandboxJob } from './types.ts'

/**
 * A job with `inputFile` carries the open's digest: nothing else reads the file to measure it,
 * and its empty `input` must never stand in for it.
 *
 * @throws {InvalidArgumentError} when `inputFile` comes without a 32-byte `payloadDigest`.
 */
export function checkFilePayloadDigest(job: SandboxJob): void {
  if (job.inputFile === undefined) return
  if (!(job.payloadDigest instanceof Uint8Array) || job.payloadDigest.byteLength !== 32) {
    throw new InvalidArgumentError('job.payloadDigest (32 bytes) must come with job.inputFile', {
      hint: 'The open computes it (ADR 0059); nothing else reads the file to measure it.',
    })
  }
}

/** @throws {InvalidArgumentError} as {@link checkFilePayloadDigest}, before anything is measured. */
export function jobPayloadDigest(job: SandboxJob): Uint8Array {
  checkFilePayloadDigest(job)
  return job.payloadDigest ?? payloadDigest(job.input, DEFAULT_CHUNK_SIZE)
}
