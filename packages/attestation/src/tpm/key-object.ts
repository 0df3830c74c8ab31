/** node:crypto public key objects from parsed TPM publics (RSA modulus/exponent, ECC point). */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { base64url } from '../bytes.ts'
import { ECC_CURVES, TPM_ALG } from './constants.ts'
import type { TpmPublic } from './public.ts'

/** @throws whatever node:crypto throws for an invalid key (e.g. a point off the curve). */
export function publicKeyObject(pub: TpmPublic): KeyObject {
  if (pub.type === TPM_ALG.RSA) {
    const e = new Uint8Array(4)
    new DataView(e.buffer).setUint32(0, pub.exponent)
    let start = 0
    while (start < 3 && e[start] === 0) start++
    return createPublicKey({
      key: { kty: 'RSA', n: base64url(pub.modulus), e: base64url(e.subarray(start)) },
      format: 'jwk',
    })
  }
  const curve = ECC_CURVES.get(pub.curveId)?.name ?? 'P-256'
  return createPublicKey({
    key: { kty: 'EC', crv: curve, x: base64url(pub.x), y: base64url(pub.y) },
    format: 'jwk',
  })
}
