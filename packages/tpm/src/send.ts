/**
 * Sending one command with the retries the TPM asks for: the warnings RETRY, YIELDED and
 * TESTING are tried again a few times with a short back-off, as tpm2-tss's ESAPI does.
 */
import { HEADER_LENGTH } from './frame.ts'
import { decodeResponseCode, RETRYABLE } from './rc.ts'

/** How often a retryable warning is tried again before the response is returned as is. */
export const MAX_RETRIES = 5

/** True for a bare error response whose code is a warning the TPM wants retried. */
export function retryable(response: Uint8Array): boolean {
  if (response.length !== HEADER_LENGTH) return false
  const rc = new DataView(response.buffer, response.byteOffset, response.byteLength).getUint32(6)
  const d = decodeResponseCode(rc)
  return d.layer === 0 && d.format === 0 && RETRYABLE.has(d.base)
}

/**
 * Sends `command` and resolves with the response, retrying up to {@link MAX_RETRIES} times
 * while the TPM answers a retryable warning. The last answer is returned whatever it is:
 * the caller's decoder maps it. Responses of retried attempts are zeroed.
 */
export async function sendWithRetry(
  // Structural (not `TpmTransport`): transport.ts builds on this file, not the other way round.
  transport: { send(command: Uint8Array): Promise<Uint8Array> },
  command: Uint8Array,
): Promise<Uint8Array> {
  for (let attempt = 0; ; attempt++) {
    const response = await transport.send(command)
    if (attempt >= MAX_RETRIES || !retryable(response)) return response
    response.fill(0)
    await new Promise((r) => setTimeout(r, attempt === 0 ? 0 : 2 ** attempt))
  }
}
