/**
 * "Encrypt to a public key": RFC 9180 HPKE, base mode, single shot,
 * DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (suite ids 0x0020 / 0x0001 / 0x0002).
 *
 * Used by the keyguard to release a data key to an executor's ephemeral key (AAD = grant id)
 * and by the executor to deliver results to receivers. The implementation is `@hpke/core`
 * (WebCrypto X25519, available in Node >= 22), loaded on first use so that importing this
 * package stays cheap (~10 MiB less RSS); key generation uses Node's X25519.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import type { CipherSuite } from '@hpke/core'
import { checkBytes } from './encoding/bytes.ts'
import { HpkeError } from './errors.ts'

/** Length of an X25519 public or private key, and of the HPKE `enc` value. */
export const X25519_KEY_LENGTH = 32
/** Bytes HPKE adds to a plaintext: `enc` (32) + AES-GCM tag (16). */
export const HPKE_OVERHEAD = 48

/** An X25519 key pair as raw bytes. Zero `privateKey` with `.fill(0)` when done. */
export interface X25519KeyPair {
  publicKey: Uint8Array
  privateKey: Uint8Array
}

/** The output of {@link hpkeSeal}: the encapsulated key and the ciphertext (with its tag). */
export interface HpkeSealed {
  /** KEM encapsulation, 32 bytes. */
  enc: Uint8Array
  /** AEAD ciphertext, plaintext length + 16 bytes. */
  ciphertext: Uint8Array
}

let suiteInstance: Promise<CipherSuite> | undefined
function suite(): Promise<CipherSuite> {
  // Built lazily: no work (and no module loading) at import time.
  suiteInstance ??= import('@hpke/core').then(
    ({ Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 }) =>
      new CipherSuite({
        kem: new DhkemX25519HkdfSha256(),
        kdf: new HkdfSha256(),
        aead: new Aes256Gcm(),
      }),
  )
  return suiteInstance
}

/** PKCS#8 DER prefix of a raw X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

function jwkBytes(value: string | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(value ?? '', 'base64url'))
}

/**
 * Generates a fresh X25519 key pair (for an executor's per-run ephemeral key, a receiver, or
 * a recovery key derived elsewhere).
 *
 * @example
 * ```ts
 * const { publicKey, privateKey } = generateX25519KeyPair()
 * ```
 */
export function generateX25519KeyPair(): X25519KeyPair {
  const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' })
  return { privateKey: jwkBytes(jwk.d), publicKey: jwkBytes(jwk.x) }
}

/**
 * Derives the X25519 public key of a private key.
 *
 * @throws {InvalidArgumentError} if `privateKey` is not 32 bytes.
 */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  checkBytes('privateKey', privateKey, X25519_KEY_LENGTH)
  const key = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]),
    format: 'der',
    type: 'pkcs8',
  })
  return jwkBytes(createPublicKey(key).export({ format: 'jwk' }).x)
}

/**
 * Encrypts `plaintext` to `recipientPublicKey` (HPKE base mode, single shot).
 *
 * @param aad - bound to the ciphertext; the opener must pass the same bytes (e.g. a grant id).
 * @throws {InvalidArgumentError} for a key that is not 32 bytes.
 * @throws {HpkeError} if the public key is not a valid X25519 point.
 * @example
 * ```ts
 * const sealed = await hpkeSeal(executorPublicKey, dataKey, grantId)
 * ```
 */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array = new Uint8Array(0),
): Promise<HpkeSealed> {
  checkBytes('recipientPublicKey', recipientPublicKey, X25519_KEY_LENGTH)
  checkBytes('plaintext', plaintext)
  checkBytes('aad', aad)
  try {
    const s = await suite()
    const recipientKey = await s.kem.deserializePublicKey(recipientPublicKey)
    const { ct, enc } = await s.seal({ recipientPublicKey: recipientKey }, plaintext, aad)
    return { enc: new Uint8Array(enc), ciphertext: new Uint8Array(ct) }
  } catch (cause) {
    throw new HpkeError('HPKE seal failed', {
      cause,
      hint: 'Check that the recipient key is a valid X25519 public key.',
    })
  }
}

/**
 * Opens an {@link HpkeSealed} with the recipient's private key.
 *
 * @throws {InvalidArgumentError} for inputs of the wrong type or length.
 * @throws {HpkeError} if the key, `enc`, ciphertext or AAD do not match.
 * @example
 * ```ts
 * const dataKey = await hpkeOpen(ephemeral.privateKey, sealed, grantId)
 * ```
 */
export async function hpkeOpen(
  recipientPrivateKey: Uint8Array,
  sealed: HpkeSealed,
  aad: Uint8Array = new Uint8Array(0),
): Promise<Uint8Array> {
  checkBytes('recipientPrivateKey', recipientPrivateKey, X25519_KEY_LENGTH)
  checkBytes('sealed.enc', sealed?.enc, X25519_KEY_LENGTH)
  checkBytes('sealed.ciphertext', sealed.ciphertext)
  checkBytes('aad', aad)
  if (sealed.ciphertext.length < 16) {
    throw new HpkeError('HPKE ciphertext is shorter than its tag', {
      details: { length: sealed.ciphertext.length },
    })
  }
  try {
    const s = await suite()
    const recipientKey = await s.kem.deserializePrivateKey(recipientPrivateKey)
    const pt = await s.open({ recipientKey, enc: sealed.enc }, sealed.ciphertext, aad)
    return new Uint8Array(pt)
  } catch (cause) {
    throw new HpkeError('HPKE open failed', {
      cause,
      hint: 'The ciphertext was not sealed to this key, was altered, or the AAD differs.',
    })
  }
}

/** Concatenates `enc || ciphertext` into one buffer for the wire. */
export function encodeHpkeSealed(sealed: HpkeSealed): Uint8Array {
  const out = new Uint8Array(sealed.enc.length + sealed.ciphertext.length)
  out.set(sealed.enc, 0)
  out.set(sealed.ciphertext, sealed.enc.length)
  return out
}

/**
 * Splits `enc || ciphertext` produced by {@link encodeHpkeSealed}.
 *
 * @throws {HpkeError} if the buffer is shorter than {@link HPKE_OVERHEAD}.
 */
export function decodeHpkeSealed(bytes: Uint8Array): HpkeSealed {
  checkBytes('bytes', bytes)
  if (bytes.length < HPKE_OVERHEAD) {
    throw new HpkeError('HPKE blob is too short', {
      details: { length: bytes.length, minimum: HPKE_OVERHEAD },
    })
  }
  return {
    enc: bytes.slice(0, X25519_KEY_LENGTH),
    ciphertext: bytes.slice(X25519_KEY_LENGTH),
  }
}
