/** Byte helpers of this package; comparison and concatenation are capsule-core's (one copy). */
export { concatBytes, equalBytes } from '@digicap/capsule-core'

export function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url')
}
