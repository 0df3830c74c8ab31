import { hexToBytes, InvalidArgumentError, isHex, X25519_KEY_LENGTH } from '@digicap/capsule-core'
import { isPeerIdString } from '../node/peer-id.ts'
import type { KeyguardCard } from './types.ts'

/** Wrapping schemes a card may name: the keyguard's RSA keys (never the recovery scheme). */
const RSA_SCHEMES: readonly string[] = ['tpm2-rsa-oaep-sha256', 'software-rsa-oaep-sha256']

export { keyguardCard } from './keyguard-card.ts'

/**
 * Checks a card read from outside (a file, a message) and returns its recovery key bytes.
 * @throws {InvalidArgumentError} for a missing field, a peerId that is not a libp2p peer id, an
 *   unknown scheme or a bad key length.
 */
export function parseKeyguardCard(card: unknown): {
  card: KeyguardCard
  recoveryPublicKey: Uint8Array
} {
  const c = card as Partial<KeyguardCard> | null
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.peerId !== 'string' ||
    c.peerId.length === 0 ||
    typeof c.wrappingKey?.pem !== 'string' ||
    !RSA_SCHEMES.includes(String(c.wrappingKey?.scheme))
  ) {
    throw new InvalidArgumentError('Not a keyguard card', {
      hint: 'Expected { peerId, wrappingKey: { scheme, pem }, recoveryPublicKey }.',
    })
  }
  const peerId: string = c.peerId
  if (!isPeerIdString(peerId)) {
    throw new InvalidArgumentError('The card’s peerId is not a libp2p peer id', {
      details: { peerId: peerId.slice(0, 60) },
      hint: 'Copy the card as `pi-node status --json` prints it (peerId is 12D3KooW…).',
    })
  }
  const hex = String(c.recoveryPublicKey ?? '')
  if (!isHex(hex, X25519_KEY_LENGTH)) {
    throw new InvalidArgumentError('recoveryPublicKey must be 32 bytes of 0x-hex', {
      details: { length: hex.length },
    })
  }
  return { card: c as KeyguardCard, recoveryPublicKey: hexToBytes(hex) }
}
