/**
 * The "before" round of a job (ADR 0033): the committee's verdict on the executor's state
 * before the run, agreed in a PBFT round of its own and recorded by
 * `AttestationHub.submitBeforeCertificate`. A keyguard releases the data key of an
 * `attested()` capsule on the chain path only once a pass is on chain. The round's PBFT job id
 * is `beforeRoundId(jobId)`, so no signature of it is valid for the job's final certificate.
 */
import { type Address, equalBytes, InvalidArgumentError, toHex } from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import type { PbftCertificate } from '../pbft/certificate.ts'
import { certificateCall } from './calls.ts'

/** The before round's verdicts: 1 the executor passed before the run, 0 it failed. */
export const BEFORE_PASS = 1
export const BEFORE_FAIL = 0

const TAG = utf8ToBytes('digicap.pbft.before')

/**
 * The PBFT job id of `jobId`'s before round: keccak256("digicap.pbft.before" ‖ jobId), as
 * `AttestationHub.beforeRoundOf(jobId)`.
 *
 * @throws {InvalidArgumentError} for a job id that is not 32 bytes.
 */
export function beforeRoundId(jobId: Uint8Array): Uint8Array {
  if (!(jobId instanceof Uint8Array) || jobId.length !== 32)
    throw new InvalidArgumentError('jobId must be 32 bytes', { details: { field: 'jobId' } })
  return keccak_256(concatBytes(TAG, jobId))
}

/**
 * `submitBeforeCertificate(jobId, value, signerBits, others, signatures)`'s arguments for a
 * certificate of `jobId`'s before round.
 *
 * @throws {InvalidArgumentError} when the certificate is not of that round, its verdict is not
 *   0 or 1, or a signer is not in `committee`.
 */
export function beforeCertificateCall(
  jobId: Uint8Array,
  certificate: PbftCertificate,
  committee: readonly Address[],
): { jobId: `0x${string}` } & ReturnType<typeof certificateCall> {
  if (!equalBytes(certificate.jobId, beforeRoundId(jobId)))
    throw new InvalidArgumentError('The certificate is not of this job’s before round', {
      details: { field: 'jobId' },
    })
  if (certificate.verdict !== BEFORE_PASS && certificate.verdict !== BEFORE_FAIL)
    throw new InvalidArgumentError('A before verdict is 1 (pass) or 0 (fail)', {
      details: { field: 'verdict' },
    })
  return { jobId: toHex(jobId), ...certificateCall(certificate, committee) }
}
