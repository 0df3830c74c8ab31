/**
 * First contact, checked (ADR 0097): before the sealer pins a key it read with an
 * unauthenticated `TPM2_ReadPublic`, it proves that the key lives in the same TPM as an EK its
 * maker certified. The EK certificate is read from NV and checked against the makers' roots
 * (ADR 0069's `verifyEkCertificate`); a credential is made IN SOFTWARE to the certificate's
 * public key for the NAME of the key read (`makeCredential`), and the TPM must give the secret
 * back through `TPM2_ActivateCredential` with that key at the pinned handle. A bus interposer
 * that shows a key of his own TPM cannot: the certified TPM holds no object of that name, and
 * his own TPM does not hold the certified EK's private key.
 */
import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto'
import type { EkRoots } from '@digicap/attestation'
import {
  activateCredential,
  createEkPrimary,
  ekRsaPublicArea,
  flushContext,
  parseRsaPublic,
  type RsaKeyPublic,
  readEkCertificateNv,
  type Send,
  TpmCommandError,
  TpmHandleError,
} from '@digicap/tpm'
import { TpmIdentityError } from '../errors.ts'

/** What the key record says of the pinned key's TPM (`ekActivation` in `tpm2-key.json`). */
export type EkActivationRecord =
  | {
      verified: true
      /** SHA-256 of the EK certificate (DER), hex. */
      certificateSha256: string
      /** The certificate's issuer (the TPM maker's CA), as X.509 prints it. */
      issuer: string
      /** The EK's name (nameAlg ‖ SHA-256 of its public area), hex. */
      ekName: string
    }
  | {
      verified: false
      /** Why no activation ran: `allowed` (the owner's explicit opt-out) or `emulator`. */
      why: 'allowed' | 'emulator'
    }

/** How a tpm2 sealer trusts a key before it pins it. */
export interface EkActivationOptions {
  /** The TPM makers' CA certificates (parsed, or a PEM file: `keyguard.ekRoots`). */
  ekRoots?: EkRoots | string | undefined
  /** Pin without activation (`--allow-unverified-tpm`): recorded and shown as UNVERIFIED TPM. */
  allowUnverified?: boolean | undefined
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** The line `describe()` and `pi-node status` show for a record's `ekActivation`. */
export function ekActivationText(record: EkActivationRecord | undefined): string {
  if (record === undefined) return 'not checked (key pinned before ADR 0097)'
  if (record.verified) {
    return `EK-activated: EK certificate sha256:${record.certificateSha256.slice(0, 16)}… issued by ${record.issuer.replace(/\n/g, ', ')}`
  }
  return record.why === 'allowed'
    ? 'UNVERIFIED TPM: pinned without credential activation (--allow-unverified-tpm)'
    : 'UNVERIFIED TPM: software emulator, no EK roots configured'
}

/**
 * Decides how the key read at init is trusted and, with roots, proves it.
 * @throws {TpmIdentityError} as the reasons of ADR 0097 (nothing may be pinned then).
 */
export async function trustKeyBeforePinning(
  send: Send,
  o: EkActivationOptions & { handle: number; key: RsaKeyPublic; emulated: boolean },
): Promise<EkActivationRecord> {
  if (o.allowUnverified === true) return { verified: false, why: 'allowed' }
  if (o.ekRoots === undefined) {
    if (o.emulated) return { verified: false, why: 'emulator' }
    throw new TpmIdentityError('No TPM makers’ roots to check this TPM against', {
      details: { reason: 'no-ek-roots' },
      hint: 'Give the TPM maker’s CA certificates (keyguard.ekRoots, DIGICAP_EK_ROOTS=<PEM file>) so init proves the key sits in a genuine TPM, or pass --allow-unverified-tpm (recorded and shown as UNVERIFIED TPM).',
    })
  }
  const attestation = await import('@digicap/attestation')
  const roots = typeof o.ekRoots === 'string' ? await attestation.readEkRoots(o.ekRoots) : o.ekRoots
  return activateAgainstEk(send, { handle: o.handle, key: o.key, roots })
}

async function activateAgainstEk(
  send: Send,
  o: { handle: number; key: RsaKeyPublic; roots: EkRoots },
): Promise<EkActivationRecord> {
  const { makeCredential, verifyEkCertificate } = await import('@digicap/attestation')
  const certificate = await readEkCertificateNv(send)
  if (certificate === undefined) {
    throw new TpmIdentityError('The TPM holds no RSA EK certificate', {
      details: { reason: 'no-ek-certificate', index: '0x01c00002' },
      hint: 'This TPM cannot prove it is genuine. Use a TPM whose maker wrote its EK certificate, or pass --allow-unverified-tpm (recorded and shown as UNVERIFIED TPM).',
    })
  }
  let x509: X509Certificate
  let modulus: Uint8Array
  try {
    x509 = new X509Certificate(certificate)
    const jwk = x509.publicKey.export({ format: 'jwk' })
    if (jwk.kty !== 'RSA' || jwk.e !== 'AQAB') throw new Error('not an RSA EK with exponent 65537')
    modulus = new Uint8Array(Buffer.from(jwk.n ?? '', 'base64url'))
    if (modulus.length !== 256) throw new Error('not RSA 2048')
  } catch (cause) {
    throw new TpmIdentityError('The EK certificate is not of an RSA 2048 EK', {
      details: { reason: 'ek-untrusted', check: 'malformed' },
      hint: 'Only the RSA 2048 EK (TCG template L-1) is supported; pass --allow-unverified-tpm to pin anyway.',
      cause,
    })
  }
  // The EK as the certificate names it: the credential is made to THIS key, never to what the
  // TPM says its EK is.
  const ekArea = ekRsaPublicArea(modulus)
  const ekPublic = new Uint8Array(2 + ekArea.length)
  new DataView(ekPublic.buffer).setUint16(0, ekArea.length)
  ekPublic.set(ekArea, 2)
  try {
    verifyEkCertificate(ekPublic, certificate, o.roots)
  } catch (cause) {
    const check = (cause as { details?: { reason?: unknown } }).details?.reason
    throw new TpmIdentityError('The TPM’s EK certificate is not trusted', {
      details: { reason: 'ek-untrusted', check: String(check), issuer: x509.issuer },
      hint: 'The certificate is not issued by one of the configured TPM makers’ CAs (keyguard.ekRoots), or is expired. Nothing was pinned.',
      cause,
    })
  }
  const ekName = parseRsaPublic(ekArea).name
  const ek = await createEkPrimary(send)
  try {
    if (!Buffer.from(ek.public.name).equals(Buffer.from(ekName))) {
      throw new TpmIdentityError('The TPM’s EK is not the key its certificate certifies', {
        details: { reason: 'ek-mismatch', certified: hex(ekName), found: hex(ek.public.name) },
        hint: 'The certificate in NV belongs to another TPM (or the endorsement seed was changed). Nothing was pinned.',
      })
    }
    const secret = new Uint8Array(randomBytes(32))
    const credential = makeCredential({ ekPublic, objectName: o.key.name, secret })
    let answer: Uint8Array
    try {
      answer = await activateCredential(send, {
        activateHandle: o.handle,
        ekHandle: ek.handle,
        credentialBlob: credential.idObject,
        secret: credential.encryptedSecret,
      })
    } catch (cause) {
      // A credential for another name, or no object at the handle: the key is not in this TPM.
      const refused =
        (cause instanceof TpmCommandError && cause.details.reason === 'credential-refused') ||
        cause instanceof TpmHandleError
      if (!refused) throw cause
      answer = new Uint8Array(0)
    }
    const ok = answer.length === secret.length && timingSafeEqual(answer, secret)
    secret.fill(0)
    if (!ok) {
      throw new TpmIdentityError('The certified TPM does not hold the key that was read', {
        details: {
          reason: 'activation-refused',
          handle: `0x${o.handle.toString(16)}`,
          keyName: hex(o.key.name),
        },
        hint: 'The key shown at the handle is not in the TPM whose EK is certified: someone on the TPM bus (or a swapped device) answered. Nothing was pinned; check the hardware before running init again.',
      })
    }
  } finally {
    await flushContext(send, ek.handle)
  }
  return {
    verified: true,
    certificateSha256: createHash('sha256').update(certificate).digest('hex'),
    issuer: x509.issuer,
    ekName: hex(ekName),
  }
}
