/**
 * The account that signs for the caller: an address and a way to sign a 32-byte digest. A
 * hardware wallet, viem's account or a TPM-held key fits it with a few lines; no ethers type.
 *
 * (Same shape as the signer `@digicap/capsule-core` is adding; this file becomes a re-export.)
 */

import { InvalidArgumentError } from '@digicap/capsule-core'
import { toChecksumAddress } from '@digicap/protocol'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'

export interface Signer {
  /** The account's address, `0x` + 40 hex digits (EIP-55). */
  readonly address: `0x${string}`
  /** Signs a 32-byte digest: 65 bytes `r ‖ s ‖ v` (v = 27 or 28). */
  signDigest(digest: Uint8Array): Promise<Uint8Array>
}

/** Keys of the signers made here: only this package reads them (the executor still needs one). */
const localKeys = new WeakMap<Signer, Uint8Array>()

function keyBytes(key: Uint8Array | string): Uint8Array {
  if (key instanceof Uint8Array) {
    if (key.length === 32) return Uint8Array.from(key)
  } else if (typeof key === 'string' && /^(0x)?[0-9a-fA-F]{64}$/.test(key)) {
    const hex = key.startsWith('0x') ? key.slice(2) : key
    return Uint8Array.from(hex.match(/../g) as string[], (b) => Number.parseInt(b, 16))
  }
  throw new InvalidArgumentError('A private key is 32 bytes (or 64 hex digits)', {
    details: { type: key instanceof Uint8Array ? `${key.length} bytes` : typeof key },
  })
}

/**
 * A signer over a secp256k1 private key held in this process.
 *
 * @throws {InvalidArgumentError} for a key that is not 32 bytes / 64 hex digits, or not a valid
 *   secp256k1 scalar.
 * @example
 * ```ts
 * const owner = privateKeySigner(process.env.OWNER_KEY!)
 * owner.address // '0x…'
 * ```
 */
export function privateKeySigner(key: Uint8Array | string): Signer {
  const secret = keyBytes(key)
  let publicKey: Uint8Array
  try {
    publicKey = secp256k1.getPublicKey(secret, false)
  } catch (cause) {
    throw new InvalidArgumentError('The private key is not a valid secp256k1 key', { cause })
  }
  const address = toChecksumAddress(keccak_256(publicKey.subarray(1)).subarray(12))
  const signer: Signer = {
    address,
    async signDigest(digest) {
      if (!(digest instanceof Uint8Array) || digest.length !== 32) {
        throw new InvalidArgumentError('A digest is 32 bytes', {
          details: { length: digest instanceof Uint8Array ? digest.length : typeof digest },
        })
      }
      const sig = secp256k1.sign(digest, secret, { prehash: false, format: 'recovered' })
      // noble's recovered format is recovery ‖ r ‖ s; Ethereum's is r ‖ s ‖ (27 + recovery).
      const out = new Uint8Array(65)
      out.set(sig.subarray(1, 65), 0)
      out[64] = 27 + (sig[0] as number)
      return out
    },
  }
  Object.freeze(signer)
  localKeys.set(signer, secret)
  return signer
}

/** The key behind a signer made by {@link privateKeySigner}, or undefined for any other signer. */
export function localKeyOf(signer: Signer): Uint8Array | undefined {
  return localKeys.get(signer)
}
