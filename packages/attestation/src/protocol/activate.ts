/**
 * Credential activation over `/digicap/attest/1.0.0` (SPEC.md §5, SPEC-ATTEST §2a): the
 * verifier wraps a fresh secret to the record's EK for the record's AK name and accepts the
 * AK only if the executor's TPM gives the same secret back — which only the TPM holding that
 * EK, with that AK loaded, can do. Checks EK and AK of ONE record (Keylime's lesson).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { DigicapError } from '@digicap/capsule-core'
import {
  attestActivateProtocol,
  type ProtocolDialer,
  type RequestOptions,
  type RequestTarget,
  request,
} from '@digicap/protocol'
import { makeCredential } from '../credential/make-credential.ts'
import { AttestationRefusedError } from '../errors.ts'
import { importAttestationKey } from '../verifier/attestation-key.ts'
import { type EkRoots, verifyEkCertificate } from '../verifier/ek-certificate.ts'

/** Options of {@link activateAttestationKey}. */
export interface ActivateOptions extends RequestOptions {
  /**
   * The TPM makers' CA certificates (`parseEkRoots`): when given, a record is activated only if
   * its EK certificate was issued by one of them and names its EK (ADR 0069). Without them, the
   * EK is whatever key the record's owner registered.
   */
  ekRoots?: EkRoots | undefined
}

/** Remembers which record hashes were activated, so each is activated once (bounded). */
export interface ActivationCache {
  has(recordHash: Uint8Array): boolean
  add(recordHash: Uint8Array): void
}

/** A cache of at most `max` record hashes; the oldest is forgotten first (then re-activated). */
export function createActivationCache(max = 4096): ActivationCache {
  const seen = new Set<string>()
  const key = (h: Uint8Array) => Buffer.from(h).toString('hex')
  return {
    has: (h) => seen.has(key(h)),
    add(h) {
      seen.add(key(h))
      while (seen.size > max) {
        const oldest = seen.values().next().value
        if (oldest === undefined) break
        seen.delete(oldest)
      }
    },
  }
}

/**
 * The record's EK certificate against `ekRoots`, as a refusal.
 * @throws {AttestationRefusedError} `ek-untrusted`, `details.check` the `EkCertificateError`'s reason.
 */
export function checkEkCertificate(
  record: { ekPublic: Uint8Array; ekCertificate?: Uint8Array | undefined },
  ekRoots: EkRoots,
): void {
  try {
    verifyEkCertificate(record.ekPublic, record.ekCertificate, ekRoots)
  } catch (cause) {
    throw new AttestationRefusedError('The record’s EK is not certified by a trusted TPM maker', {
      details: {
        reason: 'ek-untrusted',
        check: String((cause as { details?: { reason?: unknown } }).details?.reason),
      },
      cause,
    })
  }
}

/**
 * Activates the record's AK against its EK on the executor's TPM.
 *
 * @throws {AttestationRefusedError} `details.reason` `ek-untrusted` (with `ekRoots`: the EK
 *   certificate does not make the EK a TPM's; the `EkCertificateError` is the cause),
 *   `not-activated` (wrong secret, or the executor's TPM refused: another EK, another AK),
 *   `unreachable` (no answer at all), or `record-mismatch` (the record's EK or AK is not one a
 *   credential can be made for).
 */
export async function activateAttestationKey(
  node: ProtocolDialer,
  peer: RequestTarget,
  record: { ekPublic: Uint8Array; akPublic: Uint8Array; ekCertificate?: Uint8Array | undefined },
  options: ActivateOptions = {},
): Promise<void> {
  const { ekRoots, ...requestOptions } = options
  if (ekRoots !== undefined) checkEkCertificate(record, ekRoots)
  const secret = new Uint8Array(randomBytes(32))
  let credential: ReturnType<typeof makeCredential>
  try {
    const { name } = importAttestationKey(record)
    credential = makeCredential({ ekPublic: record.ekPublic, objectName: name, secret })
  } catch (cause) {
    throw new AttestationRefusedError('No credential can be made for this record', {
      details: { reason: 'record-mismatch' },
      cause,
    })
  }
  let answer: Uint8Array
  try {
    answer = (await request(node, peer, attestActivateProtocol, credential, requestOptions)).secret
  } catch (cause) {
    // An error reply means the executor's TPM could not activate: not this EK, or not this AK.
    const remote = cause instanceof DigicapError && cause.code === 'WIRE_REMOTE'
    throw new AttestationRefusedError(
      remote
        ? 'The executor’s TPM did not activate the credential'
        : 'No activation answer from the executor',
      {
        details: {
          reason: remote ? 'not-activated' : 'unreachable',
          ...(cause instanceof DigicapError ? { wire: cause.code } : {}),
        },
        cause,
      },
    )
  }
  if (answer.length !== secret.length || !timingSafeEqual(answer, secret)) {
    throw new AttestationRefusedError('The AK is not in the TPM of the registered EK', {
      details: { reason: 'not-activated' },
    })
  }
}
