/**
 * The direct TPM command path: `TPM2_RSA_Decrypt` sent over a {@link TpmTransport} without
 * spawning tpm2-tools. Retries the warnings the TPM asks to be retried (RETRY, YIELDED,
 * TESTING) a few times, like tpm2-tss's ESAPI does.
 */
import { decodeResponseCode, RETRYABLE } from './rc.ts'
import { decodeRsaDecryptResponse, encodeRsaDecrypt, HEADER_LENGTH } from './rsa-decrypt.ts'
import type { TpmTransport } from './transport.ts'

/** How often a retryable warning is tried again before it is reported as `TpmBusyError`. */
export const MAX_RETRIES = 5

function retryable(response: Uint8Array): boolean {
  if (response.length !== HEADER_LENGTH) return false
  const rc = new DataView(response.buffer, response.byteOffset, response.byteLength).getUint32(6)
  const d = decodeResponseCode(rc)
  return d.layer === 0 && d.format === 0 && RETRYABLE.has(d.base)
}

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
  const command = encodeRsaDecrypt(keyHandle, ciphertext)
  for (let attempt = 0; ; attempt++) {
    const response = await transport.send(command)
    try {
      if (attempt < MAX_RETRIES && retryable(response)) {
        await new Promise((r) => setTimeout(r, attempt === 0 ? 0 : 2 ** attempt))
        continue
      }
      return decodeRsaDecryptResponse(response)
    } finally {
      response.fill(0)
    }
  }
}
