import {
  hexToBytes,
  InvalidArgumentError,
  isHex,
  toHex,
  X25519_KEY_LENGTH,
} from '@digicap/capsule-core'
import type { KeyguardCard, KeyWrapper } from './types.ts'

/** Wrapping schemes a card may name: the keyguard's RSA keys (never the recovery scheme). */
const RSA_SCHEMES: readonly string[] = ['tpm2-rsa-oaep-sha256', 'software-rsa-oaep-sha256']

/**
 * The public card of a keyguard, for laptops that seal for it.
 * @example
 * ```ts
 * const card = await keyguardCard({ peerId, wrapper: sealer, recoveryPublicKey: owner.recoveryPublicKey })
 * ```
 */
export async function keyguardCard(input: {
  peerId: string
  wrapper: Pick<KeyWrapper, 'publicKey'>
  recoveryPublicKey: Uint8Array
}): Promise<KeyguardCard> {
  const key = await input.wrapper.publicKey()
  return {
    peerId: input.peerId,
    wrappingKey: { scheme: key.scheme, pem: key.pem },
    recoveryPublicKey: toHex(input.recoveryPublicKey),
  }
}

/**
 * Checks a card read from outside (a file, a message) and returns its recovery key bytes.
 * @throws {InvalidArgumentError} for a missing field, an unknown scheme or a bad key length.
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
  const hex = String(c.recoveryPublicKey ?? '')
  if (!isHex(hex, X25519_KEY_LENGTH)) {
    throw new InvalidArgumentError('recoveryPublicKey must be 32 bytes of 0x-hex', {
      details: { length: hex.length },
    })
  }
  return { card: c as KeyguardCard, recoveryPublicKey: hexToBytes(hex) }
}
