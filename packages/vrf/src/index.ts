/**
 * @packageDocumentation
 *
 * `@digicap/vrf` — an ECVRF (RFC 9381 structure, try-and-increment) written once over any
 * prime-order short-Weierstrass curve of `@noble/curves`, proven against the RFC's Appendix B.1
 * P-256 vectors and used on secp256k1, where the EVM checks a proof with three `ecrecover`
 * witnesses (`onchainProof`, for `Secp256k1Vrf.sol` in `@digicap/contracts`). No network, no
 * chain client: `@noble/*` and capsule-core's `DigicapError`.
 *
 * Guarantees: a proof verifies only for the key and input it was made for (`verify` throws a
 * typed `VrfProofError` otherwise, with the check that refused it); one key and input have one
 * output and one proof encoding (deterministic RFC 6979 nonces, s below the group order,
 * compressed points only); `onchainProof` verifies before it makes any witness.
 *
 * @example
 * ```ts
 * import { onchainProof, prove, publicKeyOf, SECP256K1_SHA256_TAI as suite, verify } from '@digicap/vrf'
 * import { secp256k1 } from '@noble/curves/secp256k1.js'
 *
 * const sk = secp256k1.utils.randomSecretKey()
 * const pi = prove(suite, sk, seed)
 * const beta = verify(suite, publicKeyOf(suite, sk), seed, pi) // 32 bytes, or a VrfProofError
 * const args = onchainProof(publicKeyOf(suite, sk), seed, pi) // the contract's arguments + witnesses
 * ```
 */

export type { DecodedProof } from './ecvrf.ts'
export {
  challenge,
  decodeProof,
  decodePublicKey,
  encodeToCurve,
  proofToHash,
  prove,
  publicKeyOf,
  verify,
} from './ecvrf.ts'
export type { VrfKeyReason, VrfProofReason } from './errors.ts'
export { VrfEncodeError, VrfKeyError, VrfProofError } from './errors.ts'
export type { AffinePair, OnchainVrfProof } from './onchain.ts'
export { onchainProof } from './onchain.ts'
export type { EcvrfSuite, SuiteHash } from './suite.ts'
export { P256_SHA256_TAI, SECP256K1_SHA256_TAI, suiteLengths } from './suite.ts'
