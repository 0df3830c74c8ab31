/**
 * TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2.5) for RSA and ECC keys, parsed strictly, with the
 * object's name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC).
 */
import { createHash } from 'node:crypto'
import {
  ECC_CURVES,
  HASHES,
  MAX_DIGEST,
  MAX_ECC_KEY_BYTES,
  MAX_RSA_KEY_BYTES,
  TPM_ALG,
} from './constants.ts'
import { TpmReader } from './reader.ts'

/** An algorithm with an optional hash (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME, TPMT_KDF_SCHEME). */
export interface TpmScheme {
  readonly scheme: number
  /** Absent when `scheme` is TPM_ALG_NULL. */
  readonly hashAlg?: number
}

interface PublicCommon {
  readonly nameAlg: number
  readonly objectAttributes: number
  readonly authPolicy: Uint8Array
  /** TPMT_SYM_DEF_OBJECT: `algorithm` NULL for a signing key. */
  readonly symmetric: {
    readonly algorithm: number
    readonly keyBits?: number
    readonly mode?: number
  }
  readonly scheme: TpmScheme
  /** nameAlg ‖ H_nameAlg(TPMT_PUBLIC): what a TPM calls this object. */
  readonly name: Uint8Array
  /** The TPMT_PUBLIC bytes (without the TPM2B size). */
  readonly publicArea: Uint8Array
}

export interface RsaPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.RSA
  readonly keyBits: number
  /** The public exponent (0 in the structure means 65537). */
  readonly exponent: number
  readonly modulus: Uint8Array
}

export interface EccPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.ECC
  readonly curveId: number
  readonly kdf: TpmScheme
  readonly x: Uint8Array
  readonly y: Uint8Array
}

export type TpmPublic = RsaPublic | EccPublic

function readScheme(r: TpmReader, field: string): TpmScheme {
  const scheme = r.u16(`${field}.scheme`)
  if (scheme === TPM_ALG.NULL) return { scheme }
  const known: number[] = [
    TPM_ALG.RSASSA,
    TPM_ALG.RSAPSS,
    TPM_ALG.RSAES,
    TPM_ALG.OAEP,
    TPM_ALG.ECDSA,
    TPM_ALG.ECDH,
    TPM_ALG.ECDAA,
    TPM_ALG.ECSCHNORR,
    TPM_ALG.KDF1_SP800_56A,
    TPM_ALG.KDF1_SP800_108,
  ]
  if (!known.includes(scheme)) r.fail(`${field}.scheme`, 'Unknown scheme', { scheme })
  // RSAES has no details (TPMS_EMPTY).
  if (scheme === TPM_ALG.RSAES) return { scheme }
  const hashAlg = r.u16(`${field}.details.hashAlg`)
  if (!HASHES.has(hashAlg))
    r.fail(`${field}.details.hashAlg`, 'Unknown hash algorithm', { hashAlg })
  // ECDAA carries a commit count after the hash.
  if (scheme === TPM_ALG.ECDAA) r.u16(`${field}.details.count`)
  return { scheme, hashAlg }
}

function readSymmetric(r: TpmReader): PublicCommon['symmetric'] {
  const algorithm = r.u16('parameters.symmetric.algorithm')
  if (algorithm === TPM_ALG.NULL) return { algorithm }
  if (algorithm !== TPM_ALG.AES) {
    r.fail('parameters.symmetric.algorithm', 'Unknown symmetric algorithm', { algorithm })
  }
  const keyBits = r.u16('parameters.symmetric.keyBits')
  const mode = r.u16('parameters.symmetric.mode')
  return { algorithm, keyBits, mode }
}

/**
 * Parses a TPM2B_PUBLIC (u16 size then TPMT_PUBLIC) and computes the object's name.
 *
 * @throws {TpmFormatError} truncated, trailing bytes, size mismatch, unknown type, algorithm or curve.
 */
export function parsePublic(bytes: Uint8Array): TpmPublic {
  const outer: TpmReader = new TpmReader(bytes, 'TPM2B_PUBLIC')
  const size = outer.u16('size')
  const publicArea = outer.bytes('publicArea', size)
  outer.end()
  return parsePublicArea(publicArea)
}

/** Parses a TPMT_PUBLIC (no size prefix) and computes its name. */
export function parsePublicArea(publicArea: Uint8Array): TpmPublic {
  const r: TpmReader = new TpmReader(publicArea, 'TPMT_PUBLIC')
  const type = r.u16('type')
  if (type !== TPM_ALG.RSA && type !== TPM_ALG.ECC) r.fail('type', 'Unsupported key type', { type })
  const nameAlg = r.u16('nameAlg')
  const nameHash = HASHES.get(nameAlg)
  if (nameHash === undefined || nameAlg === TPM_ALG.SHA1) {
    r.fail('nameAlg', 'Unsupported name algorithm', { nameAlg })
  }
  const objectAttributes = r.u32('objectAttributes')
  const authPolicy = r.sized('authPolicy', MAX_DIGEST)
  const symmetric = readSymmetric(r)
  const scheme = readScheme(r, 'parameters.scheme')
  const name = new Uint8Array(2 + nameHash.size)
  new DataView(name.buffer).setUint16(0, nameAlg)
  name.set(createHash(nameHash.name).update(publicArea).digest(), 2)
  const common = { nameAlg, objectAttributes, authPolicy, symmetric, scheme, name, publicArea }
  if (type === TPM_ALG.RSA) {
    const keyBits = r.u16('parameters.keyBits')
    if (keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
      r.fail('parameters.keyBits', 'Unsupported RSA key size', { keyBits })
    }
    const exponentRaw = r.u32('parameters.exponent')
    const modulus = r.sized('unique.rsa', MAX_RSA_KEY_BYTES)
    if (modulus.length !== keyBits / 8) {
      r.fail('unique.rsa', 'RSA modulus length does not match keyBits', {
        keyBits,
        length: modulus.length,
      })
    }
    r.end()
    const exponent = exponentRaw === 0 ? 65537 : exponentRaw
    return { type, ...common, keyBits, exponent, modulus }
  }
  const curveId = r.u16('parameters.curveID')
  const curve = ECC_CURVES.get(curveId)
  if (curve === undefined) r.fail('parameters.curveID', 'Unsupported curve', { curveId })
  const kdf = readScheme(r, 'parameters.kdf')
  const x = r.sized('unique.ecc.x', MAX_ECC_KEY_BYTES)
  const y = r.sized('unique.ecc.y', MAX_ECC_KEY_BYTES)
  if (x.length !== curve.size || y.length !== curve.size) {
    r.fail('unique.ecc', 'ECC point coordinates do not match the curve size', {
      curve: curve.name,
      x: x.length,
      y: y.length,
    })
  }
  r.end()
  return { type, ...common, curveId, kdf, x, y }
}
