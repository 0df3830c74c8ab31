/**
 * The keyguard's mapping of a failed `TPM2_RSA_Decrypt` to its typed errors: a ciphertext
 * that does not decrypt is `UNWRAP`; the rest is `@digicap/tpm`'s generic mapping.
 */
import type { DigicapError } from '@digicap/capsule-core'
import { responseCodeError, TPM_RC } from '@digicap/tpm'
import { UnwrapError } from '../errors.ts'

/**
 * Maps the response code of a failed `TPM2_RSA_Decrypt` (sent by the direct path) to a
 * typed error. `details` carry the code, its base and the parameter/handle/session number;
 * never any of the command's or response's bytes.
 */
export function rsaDecryptError(rc: number): DigicapError {
  return responseCodeError('TPM2_RSA_Decrypt', rc, (d, details) => {
    // libtpms (swtpm) answers an OAEP decoding failure with TPM_RC_FAILURE rather than
    // TPM_RC_VALUE; tpm2-tools' mapping treats it the same way for an unwrap.
    if (
      (d.format === 1 &&
        (d.subject === 'parameter' || d.subject === undefined) &&
        (d.base === TPM_RC.VALUE ||
          d.base === TPM_RC.SIZE ||
          d.base === TPM_RC.SCHEME ||
          d.base === TPM_RC.KEY)) ||
      (d.format === 0 && d.base === TPM_RC.FAILURE)
    ) {
      return new UnwrapError('The TPM could not decrypt the wrapped key', {
        details,
        hint: 'The ciphertext was not wrapped to this TPM key, or it was altered.',
      })
    }
    return undefined
  })
}
