/** Shapes shared by sealers, the key store and recovery. */

import type { WrappedKey, WrapScheme } from '@digicap/capsule-core'

/**
 * The wrapped-key shape is capsule-core's (`WrappedKey`, `WrapScheme`), re-exported so a key
 * store record drops into a capsule header unchanged. The keyguard produces and accepts:
 * - `tpm2-rsa-oaep-sha256`: RSA-OAEP (SHA-256, empty label) to a TPM-resident RSA-2048 key.
 * - `software-rsa-oaep-sha256`: the same to an RSA-2048 key in a 0600 file (no TPM).
 * - `hpke-x25519-recovery`: RFC 9180 HPKE to the X25519 recovery key derived from the mnemonic.
 */
export type { WrappedKey, WrapScheme }

/** The schemes the keyguard knows, in a fixed order (used by parsers). */
export const WRAP_SCHEMES: readonly WrapScheme[] = [
  'tpm2-rsa-oaep-sha256',
  'software-rsa-oaep-sha256',
  'hpke-x25519-recovery',
]

/** Where a component reports what it does. Warnings about insecure setups go to `warn`. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
}

/** A logger that writes one JSON line per event to stderr. */
export function stderrLogger(component: string): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    process.stderr.write(
      `${JSON.stringify({ level, component, message, ...fields, time: new Date().toISOString() })}\n`,
    )
  }
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
  }
}
