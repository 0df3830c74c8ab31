/** The text form of a result receiver: `[0x]<X25519 public key, 64 hex digits>[@<peer id>]`. */

import { hexToBytes } from './encoding/hex.ts'
import { InvalidArgumentError } from './errors.ts'
import type { Receiver } from './header.ts'

const RECEIVER = /^((?:0x)?[0-9a-fA-F]{64})(?:@([1-9A-HJ-NP-Za-km-z]{10,128}))?$/

/**
 * A receiver from its text form `[0x]<64 hex digits>[@<peer id>]` (a receiver object is
 * returned as it is). The one reader of this form: the SDK's `receivers` and the CLIs'
 * `--receiver` both use it.
 * @throws {InvalidArgumentError} for anything else.
 * @example
 * ```ts
 * const r = parseReceiver('0x' + 'ab'.repeat(32) + '@12D3KooW…') // { publicKey, peerId }
 * ```
 */
export function parseReceiver(r: Receiver | string): Receiver {
  if (typeof r !== 'string') return r
  const m = RECEIVER.exec(r)
  if (!m) {
    throw new InvalidArgumentError(
      'A receiver is 32 bytes of hex (0x optional), then optionally @<peer id>',
      { details: { receiver: r.slice(0, 200) } },
    )
  }
  const key = m[1] as string
  const publicKey = hexToBytes(key.startsWith('0x') ? key : `0x${key}`)
  return m[2] === undefined ? { publicKey } : { publicKey, peerId: m[2] }
}
