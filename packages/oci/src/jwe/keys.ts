/**
 * Keys a JWE recipient accepts, as ocicrypt parses them (`utils.ParsePublicKey` /
 * `ParsePrivateKey`): PEM or DER SubjectPublicKeyInfo, PKCS#8, PKCS#1 (RSA) or SEC1 (EC);
 * RSA or EC on P-256, P-384, P-521. The key algorithm follows ocicrypt's `addPubKeys`:
 * RSA → RSA-OAEP, EC → ECDH-ES+A256KW.
 */
import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto'
import { OciFormatError, OciUnsupportedError } from '../errors.ts'

/** A key as a caller may hold it. */
export type KeyInput = KeyObject | string | Uint8Array

/** Curves ocicrypt's EC keys may be on, with their JWK names and coordinate sizes. */
export const EC_CURVES: Readonly<Record<string, { crv: string; size: number }>> = {
  prime256v1: { crv: 'P-256', size: 32 },
  secp384r1: { crv: 'P-384', size: 48 },
  secp521r1: { crv: 'P-521', size: 66 },
}

function toKeyObject(input: KeyInput, kind: 'public' | 'private'): KeyObject {
  if (input instanceof KeyObject) return input
  const create = kind === 'public' ? createPublicKey : createPrivateKey
  const attempts: object[] =
    typeof input === 'string'
      ? [{ key: input, format: 'pem' }]
      : kind === 'public'
        ? [
            { key: Buffer.from(input), format: 'pem' },
            { key: Buffer.from(input), format: 'der', type: 'spki' },
          ]
        : [
            { key: Buffer.from(input), format: 'pem' },
            { key: Buffer.from(input), format: 'der', type: 'pkcs8' },
            { key: Buffer.from(input), format: 'der', type: 'pkcs1' },
            { key: Buffer.from(input), format: 'der', type: 'sec1' },
          ]
  if (kind === 'public' && isPrivateKey(input)) {
    // createPublicKey would derive the public half; a recipient list holds public keys only.
    throw new OciFormatError('A private key was given where a public key is expected')
  }
  for (const attempt of attempts) {
    try {
      return create(attempt as never)
    } catch {}
  }
  throw new OciFormatError(`Not a ${kind} key in PEM or DER`, { details: { kind } })
}

function isPrivateKey(input: string | Uint8Array): boolean {
  try {
    createPrivateKey(typeof input === 'string' ? input : Buffer.from(input))
    return true
  } catch {
    return false
  }
}

/** The curve of an EC key, or undefined for another kind. */
export function ecCurve(key: KeyObject): { crv: string; size: number } | undefined {
  const name = key.asymmetricKeyDetails?.namedCurve
  return key.asymmetricKeyType === 'ec' && name ? EC_CURVES[name] : undefined
}

function checkKind(key: KeyObject): KeyObject {
  if (key.asymmetricKeyType === 'rsa' || ecCurve(key)) return key
  throw new OciUnsupportedError('JWE recipients must hold RSA or EC (P-256/384/521) keys', {
    details: {
      type: key.asymmetricKeyType,
      curve: key.asymmetricKeyDetails?.namedCurve,
    },
  })
}

/**
 * A recipient's public key.
 * @throws {OciFormatError} if it does not parse; {@link OciUnsupportedError} for another kind.
 */
export function jwePublicKey(input: KeyInput): KeyObject {
  return checkKind(toKeyObject(input, 'public'))
}

/**
 * A recipient's private key.
 * @throws {OciFormatError} if it does not parse; {@link OciUnsupportedError} for another kind.
 */
export function jwePrivateKey(input: KeyInput): KeyObject {
  return checkKind(toKeyObject(input, 'private'))
}
