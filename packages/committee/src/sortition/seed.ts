import { InvalidArgumentError } from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { concatBytes } from '@noble/hashes/utils.js'

/**
 * The VRF input of a job's sortition: keccak256(job id ‖ blockhash of the grant's block), the
 * same bytes a contract gets from `keccak256(abi.encodePacked(jobId, blockhash(grantBlock)))`.
 * The job id fixes what is being verified; the blockhash, unknown before the grant is mined,
 * keeps anyone from knowing the committee before the job exists.
 *
 * @throws {TypeError} for a non-Uint8Array; {@link InvalidArgumentError} for a length other than 32.
 */
export function jobSeed(jobId: Uint8Array, grantBlockHash: Uint8Array): Uint8Array {
  if (!(jobId instanceof Uint8Array) || !(grantBlockHash instanceof Uint8Array))
    throw new TypeError('jobId and grantBlockHash must be Uint8Arrays')
  if (jobId.length !== 32 || grantBlockHash.length !== 32)
    throw new InvalidArgumentError('jobId and grantBlockHash must be 32 bytes each', {
      details: { jobId: jobId.length, grantBlockHash: grantBlockHash.length },
    })
  return keccak_256(concatBytes(jobId, grantBlockHash))
}
