/** The text form of a result receiver: `[0x]<X25519 public key, 64 hex digits>[@<peer id>]`. */

import { hexToBytes } from './encoding/hex.ts'
import { InvalidArgumentError } from './errors.ts'
import type { Receiver } from './header.ts'

const RECEIVER = /^((?:0x)?[0-9a-fA-F]{64})(?:@([1-9A-HJ-NP-Za-km-z]{10,128}))?$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{10,128}$/

/**
 * A receiver from its text form `[0x]<64 hex digits>[@<peer id>]`, or a receiver object
 * checked the same way (a 32-byte key, a peer id of the same alphabet) and copied. The one reader of this form: the SDK's `receivers` and the CLIs'
 * `--receiver` both use it.
 * @throws {InvalidArgumentError} for anything else.
 * @example
 * ```ts
 * const r = parseReceiver('0x' + 'ab'.repeat(32) + '@12D3KooW…') // { publicKey, peerId }
 * ```
 */
export function parseReceiver(r: Receiver | string): Receiver {
  if (typeof r !== 'string') return checkReceiverObject(r)
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

function checkReceiverObject(r: Receiver): Receiver {
  const o = r as Partial<Receiver> | null
  const peerId = o?.peerId
  if (
    typeof o !== 'object' ||
    o === null ||
    !(o.publicKey instanceof Uint8Array) ||
    o.publicKey.length !== 32 ||
    (peerId !== undefined && (typeof peerId !== 'string' || !PEER_ID.test(peerId)))
  ) {
    throw new InvalidArgumentError('A receiver is { publicKey: 32 bytes, peerId?: a peer id }', {
      details: {
        keyLength: o?.publicKey instanceof Uint8Array ? o.publicKey.length : typeof o?.publicKey,
        ...(peerId === undefined ? {} : { peerId: String(peerId).slice(0, 60) }),
      },
    })
  }
  return peerId === undefined
    ? { publicKey: o.publicKey.slice() }
    : { publicKey: o.publicKey.slice(), peerId }
}
