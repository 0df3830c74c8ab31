/**
 * The public area of an RSA key (TPMT_PUBLIC, Part 2 §12.2.4), parsed strictly, and its name:
 * `nameAlg ‖ H_nameAlg(TPMT_PUBLIC)`, what the TPM mixes into every session HMAC for the
 * object, so a caller that pins a name notices another key at the same handle.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { TpmCommandError } from '../errors.ts'
import { TpmResponseReader } from '../marshal.ts'
import { TPM_ALG } from '../session/constants.ts'

export interface RsaKeyPublic {
  readonly nameAlg: number
  readonly objectAttributes: number
  readonly authPolicy: Uint8Array
  /** TPMT_RSA_SCHEME: `TPM_ALG_NULL`, or e.g. OAEP with its hash. */
  readonly scheme: { readonly scheme: number; readonly hashAlg?: number }
  readonly keyBits: number
  /** The exponent (0 in the structure means 65537). */
  readonly exponent: number
  readonly modulus: Uint8Array
  /** The marshalled TPMT_PUBLIC (no size prefix). */
  readonly publicArea: Uint8Array
  /** `nameAlg ‖ SHA-256(publicArea)`. */
  readonly name: Uint8Array
}

/** TPMA_OBJECT bits read here. */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  noDA: 0x00000400,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
} as const

function notRsa(why: string, details: Record<string, unknown> = {}): TpmCommandError {
  return new TpmCommandError('The public area is not an RSA key with a SHA-256 name', {
    details: { reason: 'public-area', why, ...details },
  })
}

/**
 * Parses a TPMT_PUBLIC of an RSA key whose name algorithm is SHA-256 (the only kind the
 * keyguard creates). @throws {TpmCommandError} for anything else or a malformed area.
 */
export function parseRsaPublic(publicArea: Uint8Array): RsaKeyPublic {
  const r = new TpmResponseReader(publicArea, 'TPMT_PUBLIC')
  const type = r.u16('type')
  if (type !== TPM_ALG.RSA) throw notRsa('type', { type })
  const nameAlg = r.u16('nameAlg')
  if (nameAlg !== TPM_ALG.SHA256) throw notRsa('nameAlg', { nameAlg })
  const objectAttributes = r.u32('objectAttributes')
  const authPolicy = r.sized('authPolicy', 64)
  const symmetric = r.u16('symmetric.algorithm')
  if (symmetric !== TPM_ALG.NULL) {
    r.u16('symmetric.keyBits')
    r.u16('symmetric.mode')
  }
  const schemeAlg = r.u16('scheme.scheme')
  const scheme =
    schemeAlg === TPM_ALG.NULL
      ? { scheme: schemeAlg }
      : { scheme: schemeAlg, hashAlg: r.u16('scheme.hashAlg') }
  const keyBits = r.u16('keyBits')
  const exponentRaw = r.u32('exponent')
  const modulus = r.sized('unique.rsa', 512)
  r.end()
  if (modulus.length * 8 !== keyBits) throw notRsa('modulus', { keyBits, length: modulus.length })
  const name = new Uint8Array(34)
  new DataView(name.buffer).setUint16(0, nameAlg)
  name.set(createHash('sha256').update(publicArea).digest(), 2)
  return {
    nameAlg,
    objectAttributes,
    authPolicy,
    scheme,
    keyBits,
    exponent: exponentRaw === 0 ? 65537 : exponentRaw,
    modulus,
    publicArea: publicArea.slice(),
    name,
  }
}

/** The key as a Node public key (for RSA-OAEP in software). */
export function rsaPublicKeyObject(pub: RsaKeyPublic): KeyObject {
  const e = Buffer.alloc(4)
  e.writeUInt32BE(pub.exponent)
  return createPublicKey({
    key: {
      kty: 'RSA',
      n: Buffer.from(pub.modulus).toString('base64url'),
      e: e.subarray(e.findIndex((b) => b !== 0)).toString('base64url'),
    },
    format: 'jwk',
  })
}
