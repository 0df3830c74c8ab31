/** A keyguard's public card: apart from its parser so that `status` loads no HPKE (ADR 0051). */
import { toHex } from '@digicap/capsule-core/light'
import type { KeyguardCard, KeyWrapper } from './types.ts'

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
