/**
 * A job's payload digest as its run is measured (ADR 0059): the open's, from the capsule's
 * commitment leaves; for a job not opened from a capsule, its `input` taken as a capsule
 * plaintext at capsule-core's default chunk size.
 */
import { DEFAULT_CHUNK_SIZE, payloadDigest } from '@digicap/capsule-core'
import type { SandboxJob } from './types.ts'

export function jobPayloadDigest(job: SandboxJob): Uint8Array {
  return job.payloadDigest ?? payloadDigest(job.input, DEFAULT_CHUNK_SIZE)
}
