/**
 * Noise's crypto with each cipher state's key prepared once.
 *
 * `@chainsafe/libp2p-noise` gives `node:crypto` its cipher state's raw 32-byte key with every
 * transport message, and Node makes a secret key object of it each time: ~10 µs a message
 * against ~1.3 µs with a prepared `KeyObject`, for every 64 KiB frame each side sends or receives
 * (a 1 GiB fetch is 16 384 frames a direction). A cipher state's key never changes after the
 * handshake, so the key object is made on its first large message and reused, looked up by the
 * key's array and checked against a copy of its bytes (a key changed in place is prepared again,
 * never used stale). Messages under 1 200 bytes go to noise's own default, as before (its
 * WebAssembly cipher is faster there); so do the handshake's hashing and key agreement.
 */
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'

const CHACHA_POLY1305 = 'chacha20-poly1305'
const TAG = 16
/** Below this, noise's default (WebAssembly) cipher is the faster one (its own threshold). */
const SMALL = 1200

const prepared = new WeakMap<Uint8Array, { bytes: Uint8Array; key: KeyObject }>()

/** How many prepared keys were asked for and made (read by the tests; not in the package's face). */
export const preparedKeyCounts = { asked: 0, made: 0 }

/** The key object of a cipher state's key, made once per key array. */
export function keyObjectOf(k: Uint8Array): KeyObject {
  preparedKeyCounts.asked++
  const hit = prepared.get(k)
  if (hit && hit.bytes.length === k.length && timingSafeEqual(hit.bytes, k)) return hit.key
  const bytes = Uint8Array.from(k)
  const key = createSecretKey(bytes)
  preparedKeyCounts.made++
  prepared.set(k, { bytes, key })
  return key
}

/** A message as noise hands it over: one array, or a list of parts (noise's own list type). */
type Bytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

/**
 * What noise takes back: an array or noise's own list (uint8arraylist 2.4.9). This package's list
 * (3.0.2) is one to noise at run time (the versions recognise each other by a registered symbol),
 * not to TypeScript: hence the casts below.
 */
type Sealed = ReturnType<ICryptoInterface['chaCha20Poly1305Encrypt']>

/** ChaCha20-Poly1305 of noise with prepared keys; everything else is noise's default. */
export const preparedKeyNoiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext: Bytes, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array) {
    if (plaintext.byteLength < SMALL) {
      return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    }
    const cipher = createCipheriv(CHACHA_POLY1305, keyObjectOf(k), nonce, { authTagLength: TAG })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    if (plaintext instanceof Uint8Array) {
      const body = cipher.update(plaintext)
      const final = cipher.final()
      const tag = cipher.getAuthTag()
      return Buffer.concat([body, final, tag], body.byteLength + final.byteLength + TAG)
    }
    // A list (a message that arrived in parts) is taken part by part, never joined first.
    const out = new Uint8ArrayList()
    for (const part of plaintext) out.append(cipher.update(part))
    const final = cipher.final()
    if (final.byteLength > 0) out.append(final)
    out.append(cipher.getAuthTag())
    return out as unknown as Sealed
  },
  chaCha20Poly1305Decrypt(
    ciphertext: Bytes,
    nonce: Uint8Array,
    ad: Uint8Array,
    k: Uint8Array,
    dst?: Uint8Array,
  ) {
    if (ciphertext.byteLength < SMALL) {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    }
    const decipher = createDecipheriv(CHACHA_POLY1305, keyObjectOf(k), nonce, {
      authTagLength: TAG,
    })
    const bodyLength = ciphertext.byteLength - TAG
    decipher.setAAD(ad, { plaintextLength: bodyLength })
    decipher.setAuthTag(ciphertext.subarray(bodyLength))
    if (ciphertext instanceof Uint8Array) {
      const body = decipher.update(ciphertext.subarray(0, bodyLength))
      const final = decipher.final()
      return final.byteLength > 0
        ? Buffer.concat([body, final], body.byteLength + final.byteLength)
        : body
    }
    const out = new Uint8ArrayList()
    for (const part of ciphertext.sublist(0, bodyLength)) out.append(decipher.update(part))
    const final = decipher.final()
    if (final.byteLength > 0) out.append(final)
    return out as unknown as Sealed
  },
}
