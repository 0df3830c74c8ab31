import { toHex } from '@digicap/capsule-core/light'

/** A result as text when it is text, else as 0x hex. */
export function printable(bytes: Uint8Array): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting binary output
  return /[\u0000-\u0008\u000e-\u001f]/.test(text) ? toHex(bytes) : text
}
