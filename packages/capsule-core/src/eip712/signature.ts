/**
 * secp256k1 signatures as Ethereum writes them (`r || s || v`, v = 27 or 28, low s), and the
 * address of a key: `@noble/curves` and `@noble/hashes`, no ethers.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { type Address, checksumAddress } from '../encoding/address.ts'
import { bytesArg, checkBytes } from '../encoding/bytes.ts'
import { type Hex, hexToBytes } from '../encoding/hex.ts'
import { CapsuleSignatureError, InvalidArgumentError } from '../errors.ts'
import { hashTypedData, type TypedData } from './typed-data.ts'

/** Length of an Ethereum signature `r || s || v`. */
export const SIGNATURE_LENGTH = 65

/**
 * Signs a 32-byte digest; returns `r || s || v` (v = 27 or 28), low-s, RFC 6979 deterministic.
 *
 * @throws {InvalidArgumentError} if the key is not a valid 32-byte secp256k1 key.
 */
export function signDigest(digest: Uint8Array, privateKey: Uint8Array | Hex): Uint8Array {
  const key = bytesArg('privateKey', privateKey, 32)
  bytesArg('digest', digest, 32)
  let rec: Uint8Array
  try {
    rec = secp256k1.sign(digest, key, { prehash: false, format: 'recovered' })
  } catch (cause) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key', { cause })
  }
  const out = new Uint8Array(SIGNATURE_LENGTH)
  out.set(rec.subarray(1), 0)
  out[64] = 27 + (rec[0] as number)
  return out
}

/**
 * Recovers the signer address of an Ethereum-style 65-byte signature over a digest.
 * Rejects v other than 27/28 and high-s signatures (both would allow a second valid
 * encoding of the same signature).
 *
 * @throws {InvalidArgumentError} if the digest is not 32 bytes (as {@link signDigest}: a longer
 *   one would be cut to its first 32 bytes by the curve library, so that bytes nobody signed
 *   would "verify").
 * @throws {CapsuleSignatureError} if the signature is malformed or recovers no key.
 */
export function recoverDigestSigner(digest: Uint8Array, signature: Uint8Array | Hex): Address {
  checkBytes('digest', digest, 32)
  const sig = typeof signature === 'string' ? signatureFromHex(signature) : signature
  if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_LENGTH) {
    throw new CapsuleSignatureError('signature must be 65 bytes (r || s || v)', {
      details: { length: sig instanceof Uint8Array ? sig.length : typeof sig },
    })
  }
  const v = sig[64] as number
  if (v !== 27 && v !== 28) {
    throw new CapsuleSignatureError('signature v must be 27 or 28', { details: { v } })
  }
  const rec = new Uint8Array(65)
  rec[0] = v - 27
  rec.set(sig.subarray(0, 64), 1)
  try {
    const s = secp256k1.Signature.fromBytes(rec, 'recovered')
    if (s.hasHighS()) throw new Error('high s')
    const pub = secp256k1.recoverPublicKey(rec, digest, { prehash: false })
    const uncompressed = secp256k1.Point.fromBytes(pub).toBytes(false)
    return checksumAddress(keccak_256(uncompressed.subarray(1)).subarray(12))
  } catch (cause) {
    throw new CapsuleSignatureError('signature does not recover a public key', {
      cause,
      hint: 'The signature is malformed (zero or out-of-range r/s, or high s).',
    })
  }
}

/**
 * Recovers the address that signed `typedData` (EIP-712).
 *
 * @throws {CapsuleSignatureError} if the signature is malformed or recovers no key.
 * @throws {InvalidArgumentError} for typed data whose values do not fit their types.
 * @example
 * ```ts
 * const signer = recoverTypedDataSigner(td, signature) // compare with the expected address
 * ```
 */
export function recoverTypedDataSigner(typedData: TypedData, signature: Uint8Array | Hex): Address {
  return recoverDigestSigner(hashTypedData(typedData), signature)
}

function signatureFromHex(hex: string): Uint8Array {
  try {
    return hexToBytes(hex, { name: 'signature' })
  } catch (cause) {
    throw new CapsuleSignatureError('signature is not a hex string', { cause })
  }
}

/**
 * The Ethereum address of a secp256k1 private key.
 *
 * @throws {InvalidArgumentError} if the key is not a valid 32-byte secp256k1 key.
 */
export function addressFromPrivateKey(privateKey: Uint8Array | Hex): Address {
  const key = bytesArg('privateKey', privateKey, 32)
  let pub: Uint8Array
  try {
    pub = secp256k1.getPublicKey(key, false)
  } catch (cause) {
    throw new InvalidArgumentError('privateKey is not a valid secp256k1 key', { cause })
  }
  return checksumAddress(keccak_256(pub.subarray(1)).subarray(12))
}
