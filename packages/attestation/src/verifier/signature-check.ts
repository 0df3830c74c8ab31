/**
 * Signature scheme policy and verification of a quote's TPMT_SIGNATURE under the AK.
 * sha256 only; an RSA AK signs RSASSA or RSAPSS, an ECC AK ECDSA; if the AK fixes a scheme
 * the signature must use it. High-s ECDSA signatures are genuine TPM output (a TPM does not
 * normalise s) and are accepted.
 */
import { constants, verify } from 'node:crypto'
import { QuoteVerificationError } from '../errors.ts'
import { ECC_CURVES, TPM_ALG } from '../tpm/constants.ts'
import type { TpmSignature } from '../tpm/signature.ts'
import type { AttestationKey } from './attestation-key.ts'

function schemeError(shortMessage: string, details: Record<string, unknown>): never {
  throw new QuoteVerificationError('QUOTE_SIGNATURE_SCHEME', shortMessage, { details })
}

/** @throws {QuoteVerificationError} `QUOTE_SIGNATURE_SCHEME`. */
export function checkSignatureScheme(sig: TpmSignature, ak: AttestationKey): void {
  if (sig.hashAlg !== TPM_ALG.SHA256) {
    schemeError('The quote is not signed over sha256', {
      field: 'signature.hash',
      hashAlg: sig.hashAlg,
    })
  }
  const fits =
    ak.public.type === TPM_ALG.RSA
      ? sig.sigAlg === TPM_ALG.RSASSA || sig.sigAlg === TPM_ALG.RSAPSS
      : sig.sigAlg === TPM_ALG.ECDSA
  if (!fits) {
    schemeError('The signature scheme does not fit the AK type', {
      field: 'sigAlg',
      sigAlg: sig.sigAlg,
      keyType: ak.public.type,
    })
  }
  const fixed = ak.public.scheme
  if (fixed.scheme !== TPM_ALG.NULL && fixed.scheme !== sig.sigAlg) {
    schemeError("The signature scheme is not the AK's scheme", {
      field: 'sigAlg',
      sigAlg: sig.sigAlg,
      akScheme: fixed.scheme,
    })
  }
}

function leftPad(value: Uint8Array, size: number): Uint8Array | undefined {
  let start = 0
  while (start < value.length - size && value[start] === 0) start++
  const trimmed = value.subarray(start)
  if (trimmed.length > size) return undefined
  const out = new Uint8Array(size)
  out.set(trimmed, size - trimmed.length)
  return out
}

/** @throws {QuoteVerificationError} `QUOTE_SIGNATURE`. */
export function verifyQuoteSignature(
  attest: Uint8Array,
  sig: TpmSignature,
  ak: AttestationKey,
): void {
  let ok = false
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    const size =
      ak.public.type === TPM_ALG.ECC ? (ECC_CURVES.get(ak.public.curveId)?.size ?? 32) : 32
    const r = leftPad(sig.r, size)
    const s = leftPad(sig.s, size)
    if (r !== undefined && s !== undefined) {
      const p1363 = new Uint8Array(size * 2)
      p1363.set(r, 0)
      p1363.set(s, size)
      ok = verify('sha256', attest, { key: ak.key, dsaEncoding: 'ieee-p1363' }, p1363)
    }
  } else if (ak.public.type === TPM_ALG.RSA && sig.sig.length === ak.public.modulus.length) {
    ok = verify(
      'sha256',
      attest,
      sig.sigAlg === TPM_ALG.RSAPSS
        ? {
            key: ak.key,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: constants.RSA_PSS_SALTLEN_AUTO,
          }
        : { key: ak.key, padding: constants.RSA_PKCS1_PADDING },
      sig.sig,
    )
  }
  if (!ok) {
    throw new QuoteVerificationError(
      'QUOTE_SIGNATURE',
      'The quote signature does not verify under the AK',
      {
        details: { field: 'signature', sigAlg: sig.sigAlg },
      },
    )
  }
}
