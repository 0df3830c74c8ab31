import { prove, publicKeyOf, SECP256K1_SHA256_TAI, verify } from '@digicap/vrf'

/** A node's VRF ticket for a job: the proof it publishes and the output it implies. */
export interface VrfTicket {
  readonly publicKey: Uint8Array
  readonly proof: Uint8Array
  readonly beta: Uint8Array
}

/** Draws this node's ticket for `seed` (see `jobSeed`) on secp256k1. */
export function drawTicket(secretKey: Uint8Array, seed: Uint8Array): VrfTicket {
  const proof = prove(SECP256K1_SHA256_TAI, secretKey, seed)
  const publicKey = publicKeyOf(SECP256K1_SHA256_TAI, secretKey)
  return { publicKey, proof, beta: verify(SECP256K1_SHA256_TAI, publicKey, seed, proof) }
}

/**
 * The output of another node's ticket, verified.
 *
 * @throws {VrfProofError} / {VrfKeyError} when the proof does not verify.
 */
export function verifyTicket(
  publicKey: Uint8Array,
  seed: Uint8Array,
  proof: Uint8Array,
): Uint8Array {
  return verify(SECP256K1_SHA256_TAI, publicKey, seed, proof)
}
