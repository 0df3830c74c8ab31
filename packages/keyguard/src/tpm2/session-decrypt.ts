/**
 * `TPM2_RSA_Decrypt` in a salted session with response encryption: the data key the TPM
 * returns crosses the bus (SPI on a Pi TPM HAT, the socket for swtpm) only AES-128-CFB
 * encrypted under a key derived from a salt that only the TPM holding the pinned wrapping key
 * can decrypt. The session is salted to the wrapping key itself, so a different key at the
 * handle cannot open the salt (`TpmSessionError`, `salt-refused`) and a forged or altered
 * response fails its HMAC (`response-hmac`) before anything is decrypted.
 *
 * One channel per unwrap (StartAuthSession, RSA_Decrypt; the TPM flushes the session on
 * success), the same sequence on swtpm and `/dev/tpmrm0`.
 */
import {
  flushContext,
  forgetSession,
  runSessionCommand,
  type SaltKey,
  startSaltedSession,
  TPM_CC,
  type TpmSession,
  type TpmTransport,
  withChannel,
} from '@digicap/tpm'
import { rsaDecryptError } from './rc.ts'
import { decodeRsaDecryptMessage, rsaDecryptParameters } from './rsa-decrypt.ts'

/**
 * Decrypts `ciphertext` with the key at `key.handle`, whose public area the caller pinned.
 * Resolves with the plaintext (the caller owns and zeroes it).
 *
 * @throws {TpmSessionError} the key at the handle is not the pinned key, or a response was altered.
 * @throws {UnwrapError} the ciphertext does not decrypt under the key.
 * @throws {TpmHandleError} | {TpmBusyError} | {TpmUnavailableError} | {TpmCommandError} as the direct path.
 */
export function rsaDecryptInSession(
  transport: TpmTransport,
  key: SaltKey,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  const parameters = rsaDecryptParameters(ciphertext)
  return withChannel(transport, async (send) => {
    const session: TpmSession = await startSaltedSession(send, key, 'hmac')
    let done = false
    try {
      const response = await runSessionCommand(send, session, {
        name: 'TPM2_RSA_Decrypt',
        code: TPM_CC.RSA_Decrypt,
        handles: [{ handle: key.handle, name: key.public.name }],
        parameters,
        encryptResponse: true,
        refine: (d) => rsaDecryptError(d.rc),
      })
      done = true
      try {
        return decodeRsaDecryptMessage(response.parameters)
      } finally {
        response.parameters.fill(0)
      }
    } finally {
      forgetSession(session)
      // A failed command leaves the session loaded (continueSession applies on success only).
      if (!done) await flushContext(send, session.handle)
    }
  })
}
