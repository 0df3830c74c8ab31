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

/** `value` without its leading zero bytes (one zero byte for zero); `undefined` past `size` bytes. */
function magnitude(value: Uint8Array, size: number): Uint8Array | undefined {
  let start = 0
  while (start < value.length - 1 && value[start] === 0) start++
  const trimmed = value.subarray(start)
  return trimmed.length > size ? undefined : trimmed
}

/**
 * The DER `ECDSA-Sig-Value` of (r, s), canonical (minimal positive INTEGERs), or `undefined` when
 * r or s does not fit the curve's size. Why DER and not `dsaEncoding: 'ieee-p1363'`: node:crypto
 * converts P1363 to DER itself and takes an options object for it, which cost about a third of
 * each ECDSA verification in bench/verify.ts; a bare KeyObject with DER is the cheapest call.
 */
export function ecdsaDer(r: Uint8Array, s: Uint8Array, size: number): Uint8Array | undefined {
  const rm = magnitude(r, size)
  const sm = magnitude(s, size)
  if (rm === undefined || sm === undefined || rm.length === 0 || sm.length === 0) return undefined
  const rPad = (rm[0] as number) & 0x80 ? 1 : 0
  const sPad = (sm[0] as number) & 0x80 ? 1 : 0
  const body = 4 + rPad + rm.length + sPad + sm.length
  const head = body < 0x80 ? 2 : 3
  const out = new Uint8Array(head + body)
  let at = 0
  out[at++] = 0x30
  if (head === 3) out[at++] = 0x81
  out[at++] = body
  for (const [m, pad] of [
    [rm, rPad],
    [sm, sPad],
  ] as const) {
    out[at++] = 0x02
    out[at++] = m.length + pad
    at += pad
    out.set(m, at)
    at += m.length
  }
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
    const der = ecdsaDer(sig.r, sig.s, size)
    if (der !== undefined) ok = verify('sha256', attest, ak.key, der)
  } else if (ak.public.type === TPM_ALG.RSA && sig.sig.length === ak.public.modulus.length) {
    ok = verify(
      'sha256',
      attest,
      // A bare RSA KeyObject verifies PKCS#1 v1.5 (RSASSA), and costs less than an options object.
      sig.sigAlg === TPM_ALG.RSAPSS
        ? {
            key: ak.key,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: constants.RSA_PSS_SALTLEN_AUTO,
          }
        : ak.key,
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
