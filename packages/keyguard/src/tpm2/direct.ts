/**
 * The direct TPM command path: `TPM2_RSA_Decrypt` sent over a {@link TpmTransport} without
 * spawning tpm2-tools. Retries the warnings the TPM asks to be retried (RETRY, YIELDED,
 * TESTING) a few times, like tpm2-tss's ESAPI does (`sendWithRetry` of `@digicap/tpm`).
 */
import { sendWithRetry, type TpmTransport } from '@digicap/tpm'
import { decodeRsaDecryptResponse, encodeRsaDecrypt } from './rsa-decrypt.ts'

export { MAX_RETRIES } from '@digicap/tpm'

/**
 * Decrypts `ciphertext` (RSA-OAEP-SHA256, empty label) with the key at `keyHandle`, which
 * must need no authorization value. Resolves with the plaintext (the caller owns and should
 * zero it).
 *
 * @throws {UnwrapError} the ciphertext does not decrypt under the key.
 * @throws {TpmHandleError} no usable decryption key at `keyHandle`.
 * @throws {TpmBusyError} the TPM stayed busy, is out of memory or locked out.
 * @throws {TpmUnavailableError} no connection, the connection dropped, or no answer in time.
 * @throws {TpmCommandError} a malformed response or any other TPM failure.
 */
export async function rsaDecryptDirect(
  transport: TpmTransport,
  keyHandle: number,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  const response = await sendWithRetry(transport, encodeRsaDecrypt(keyHandle, ciphertext))
  try {
    return decodeRsaDecryptResponse(response)
  } finally {
    response.fill(0)
  }
}
