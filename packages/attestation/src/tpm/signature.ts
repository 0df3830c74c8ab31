/**
 * TPMT_SIGNATURE (TPM 2.0 Part 2 §11.3.4) for the schemes an attestation key signs with:
 * RSASSA, RSAPSS and ECDSA. Anything else, a hash this package does not know, a size out of
 * range or trailing bytes is a {@link TpmFormatError} naming the field.
 */
import { HASHES, MAX_ECC_KEY_BYTES, MAX_RSA_KEY_BYTES, TPM_ALG } from './constants.ts'
import { TpmReader } from './reader.ts'

export type TpmSignature =
  | {
      readonly sigAlg: typeof TPM_ALG.RSASSA | typeof TPM_ALG.RSAPSS
      readonly hashAlg: number
      readonly sig: Uint8Array
    }
  | {
      readonly sigAlg: typeof TPM_ALG.ECDSA
      readonly hashAlg: number
      readonly r: Uint8Array
      readonly s: Uint8Array
    }

/**
 * Parses a TPMT_SIGNATURE.
 *
 * @throws {TpmFormatError} truncated, trailing bytes, unknown `sigAlg` or `hash`, size out of range.
 */
export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r: TpmReader = new TpmReader(bytes, 'TPMT_SIGNATURE')
  const sigAlg = r.u16('sigAlg')
  if (sigAlg !== TPM_ALG.RSASSA && sigAlg !== TPM_ALG.RSAPSS && sigAlg !== TPM_ALG.ECDSA) {
    r.fail('sigAlg', 'Unsupported signature algorithm', { sigAlg })
  }
  const hashAlg = r.u16('signature.hash')
  if (!HASHES.has(hashAlg)) r.fail('signature.hash', 'Unknown hash algorithm', { hashAlg })
  if (sigAlg === TPM_ALG.ECDSA) {
    const sr = r.sized('signature.signatureR', MAX_ECC_KEY_BYTES)
    const ss = r.sized('signature.signatureS', MAX_ECC_KEY_BYTES)
    r.end()
    return { sigAlg, hashAlg, r: sr, s: ss }
  }
  const sig = r.sized('signature.sig', MAX_RSA_KEY_BYTES)
  r.end()
  return { sigAlg, hashAlg, sig }
}
