/**
 * The EK certificate check (SPEC.md §9, ADR 0069): a record's EK is a TPM's when the TPM's maker
 * certified it. Credential activation alone proves only that the answerer holds the EK's private
 * key, which a key pair made in software does too.
 *
 * The check is X.509 as node:crypto (OpenSSL) does it, one level: the certificate must be issued
 * and signed by one CA certificate of the trusted bundle (every certificate in it is an anchor,
 * so a maker's intermediate CA goes in with its root), both valid now; it must not be a CA itself,
 * any extended key usage it has must include tcg-kp-EKCertificate, and its public key must be the
 * record's EK.
 */
import { type KeyObject, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { EkCertificateError } from '../errors.ts'
import { publicKeyObject } from '../tpm/key-object.ts'
import { parsePublic } from '../tpm/public.ts'

/** The certificates an EK certificate may be issued by (the TPM makers' CAs). */
export type EkRoots = readonly X509Certificate[]

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * The certificates of a PEM bundle (the TPM makers' CA certificates, concatenated).
 *
 * @throws {EkCertificateError} `malformed`: no certificate in the text, or one that does not parse.
 * @example
 * ```ts
 * const ekRoots = parseEkRoots(await readFile('/etc/digicap/tpm-ek-roots.pem', 'utf8'))
 * ```
 */
export function parseEkRoots(pem: string): EkRoots {
  const blocks = pem.match(PEM_BLOCK) ?? []
  if (blocks.length === 0) {
    throw new EkCertificateError('No certificate in the EK roots', {
      details: { reason: 'malformed' },
    })
  }
  return blocks.map((block, index) => {
    let cert: X509Certificate
    try {
      cert = new X509Certificate(block)
    } catch (cause) {
      throw new EkCertificateError('An EK root does not parse as a certificate', {
        details: { reason: 'malformed', index },
        cause,
      })
    }
    // an anchor that is no CA could vouch for any key pair it signs (review)
    if (!cert.ca) {
      throw new EkCertificateError('An EK root is not a CA certificate', {
        details: { reason: 'malformed', index, subject: cert.subject },
      })
    }
    return cert
  })
}

/** The TCG's extended key usage of an EK certificate (EK Credential Profile: tcg-kp-EKCertificate). */
export const TCG_KP_EK_CERTIFICATE = '2.23.133.8.1'

/**
 * The certificates of a PEM file (`keyguard.ekRoots`, `verifier.ekRoots`).
 *
 * @throws {EkCertificateError} `unreadable` (with the file), or `malformed` as {@link parseEkRoots}.
 */
export async function readEkRoots(file: string): Promise<EkRoots> {
  let pem: string
  try {
    pem = await readFile(file, 'utf8')
  } catch (cause) {
    throw new EkCertificateError('Cannot read the EK roots file', {
      details: { reason: 'unreadable', file },
      cause,
    })
  }
  return parseEkRoots(pem)
}

const fail = (reason: string, shortMessage: string, details: Record<string, unknown> = {}) =>
  new EkCertificateError(shortMessage, { details: { reason, ...details } })

function validAt(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo)
}

/**
 * Checks that `certificate` (DER) makes `ekPublic` (TPM2B_PUBLIC) a TPM's EK for `roots`.
 *
 * @throws {EkCertificateError} naming the reason (`missing`, `malformed`, `untrusted`, `expired`,
 *   `key-mismatch`).
 */
export function verifyEkCertificate(
  ekPublic: Uint8Array,
  certificate: Uint8Array | undefined,
  roots: EkRoots,
  now: Date = new Date(),
): void {
  if (certificate === undefined || certificate.length === 0) {
    throw fail('missing', 'The record carries no EK certificate')
  }
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certificate)
  } catch (cause) {
    throw new EkCertificateError('The EK certificate does not parse', {
      details: { reason: 'malformed' },
      cause,
    })
  }
  // a leaf that is itself a CA, or one issued for another purpose (a TLS server's), is not an
  // EK certificate, whoever signed it; an issuer must be a CA (review)
  if (cert.ca) throw fail('untrusted', 'The EK certificate is a CA certificate')
  const usages = cert.keyUsage
  if (usages !== undefined && !usages.includes(TCG_KP_EK_CERTIFICATE)) {
    throw fail('untrusted', 'The EK certificate is issued for another purpose', { usages })
  }
  const issuer = roots.find(
    (root) => root.ca && cert.checkIssued(root) && cert.verify(root.publicKey),
  )
  if (issuer === undefined) {
    throw fail('untrusted', 'The EK certificate was issued by none of the trusted EK roots', {
      issuer: cert.issuer,
    })
  }
  if (!validAt(cert, now) || !validAt(issuer, now)) {
    throw fail('expired', 'The EK certificate or its issuer is not valid now', {
      validFrom: cert.validFrom,
      validTo: cert.validTo,
    })
  }
  let ek: KeyObject
  try {
    ek = publicKeyObject(parsePublic(ekPublic))
  } catch (cause) {
    throw new EkCertificateError('The record’s EK is not a valid key', {
      details: { reason: 'key-mismatch' },
      cause,
    })
  }
  if (!cert.publicKey.equals(ek)) {
    throw fail('key-mismatch', 'The EK certificate certifies another key than the record’s EK')
  }
}
