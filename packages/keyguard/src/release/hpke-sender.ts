/**
 * An HPKE (RFC 9180, base mode, DHKEM-X25519/HKDF-SHA256/AES-256-GCM, empty info) sender
 * context set up before the plaintext exists, so the KEM work overlaps the TPM unwrap. The
 * output `enc || ciphertext` is exactly what capsule-core's `hpkeSeal` + `encodeHpkeSealed`
 * produce, and opens with `hpkeOpen`.
 */
import { HpkeError } from '@digicap/capsule-core'
import type { CipherSuite } from '@hpke/core'

let suiteInstance: Promise<CipherSuite> | undefined
function suite(): Promise<CipherSuite> {
  // Loaded on first use: nothing happens at import time.
  suiteInstance ??= import('@hpke/core').then(
    ({ Aes256Gcm, CipherSuite: Suite, DhkemX25519HkdfSha256, HkdfSha256 }) =>
      new Suite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() }),
  )
  return suiteInstance
}

/** A one-shot sender: `seal` may be called once. */
export interface HpkeSender {
  /** Seals `plaintext` and returns `enc || ciphertext`. */
  seal(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>
}

/**
 * Sets up a sender context to `recipientPublicKey` (32-byte X25519).
 * @throws {HpkeError} if the key is not a usable X25519 public key.
 */
export async function hpkeSender(recipientPublicKey: Uint8Array): Promise<HpkeSender> {
  try {
    const s = await suite()
    const ctx = await s.createSenderContext({
      recipientPublicKey: await s.kem.deserializePublicKey(recipientPublicKey),
    })
    const enc = new Uint8Array(ctx.enc)
    return {
      async seal(plaintext, aad) {
        const ct = new Uint8Array(await ctx.seal(plaintext, aad))
        const out = new Uint8Array(enc.length + ct.length)
        out.set(enc, 0)
        out.set(ct, enc.length)
        return out
      },
    }
  } catch (cause) {
    throw new HpkeError('HPKE sender setup failed', {
      cause,
      hint: 'Check that the ephemeral key is a valid X25519 public key.',
    })
  }
}
