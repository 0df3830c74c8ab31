/**
 * The run binding a quote's qualifying data must carry: SHA-256(nonce ‖ grant id ‖ ephemeral
 * public key). Nonce and grant id have fixed lengths and the key comes last, so no two
 * different triples give the same input.
 */
import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { concatBytes } from '../bytes.ts'

export const BINDING_NONCE_LENGTH = 32
export const BINDING_GRANT_ID_LENGTH = 32
/** Longest ephemeral key accepted (an uncompressed P-521 point is 133 bytes). */
export const BINDING_MAX_KEY_LENGTH = 133

export interface QuoteBindingParameters {
  /** The verifier's fresh 32-byte challenge. */
  nonce: Uint8Array
  /** The 32-byte grant id of the run. */
  grantId: Uint8Array
  /** The executor's ephemeral public key for this run (the key material is released to). */
  ephemeralPublicKey: Uint8Array
}

function checkLength(name: string, value: Uint8Array, min: number, max: number): void {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max) {
    throw new InvalidArgumentError(`${name} has the wrong length`, {
      details: {
        name,
        length: value instanceof Uint8Array ? value.length : typeof value,
        min,
        max,
      },
    })
  }
}

/**
 * The 32-byte qualifying data (`tpm2_quote -q`) that binds a quote to one challenge, one
 * grant and one ephemeral key.
 *
 * @throws {InvalidArgumentError} if a part has the wrong length.
 */
export function quoteBinding(params: QuoteBindingParameters): Uint8Array {
  checkLength('nonce', params.nonce, BINDING_NONCE_LENGTH, BINDING_NONCE_LENGTH)
  checkLength('grantId', params.grantId, BINDING_GRANT_ID_LENGTH, BINDING_GRANT_ID_LENGTH)
  checkLength('ephemeralPublicKey', params.ephemeralPublicKey, 1, BINDING_MAX_KEY_LENGTH)
  const input = concatBytes(params.nonce, params.grantId, params.ephemeralPublicKey)
  return new Uint8Array(createHash('sha256').update(input).digest())
}
