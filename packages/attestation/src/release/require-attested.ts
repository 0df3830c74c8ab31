/**
 * The release gate of `attested()` (SPEC.md §10): before a keyguard releases a data key to a
 * grant's ephemeral key, it challenges the executor over `/digicap/attest/1.0.0` and releases
 * only if the answer is a valid "before" quote of the executor's registered attestation key,
 * bound to this grant and this ephemeral key, with PCR 23 at its reset value and the boot PCRs
 * as registered. The record is the caller's or, if it has none, the one the executor sends
 * with its evidence; either way it must hash to the NodeRegistry's `attestationKeyHash`.
 */
import { DigicapError } from '@digicap/capsule-core'
import type { ProtocolDialer, RequestOptions, RequestTarget } from '@digicap/protocol'
import { equalBytes } from '../bytes.ts'
import { AttestationRefusedError } from '../errors.ts'
import {
  type ActivationCache,
  activateAttestationKey,
  checkEkCertificate,
  createActivationCache,
} from '../protocol/activate.ts'
import { requestAttestation, verifyAttestation } from '../protocol/challenge.ts'
import {
  type AttestationRecord,
  attestationRecordHash,
  decodeAttestationRecord,
} from '../registration/record.ts'
import type { QuoteClock } from '../verifier/clock.ts'
import type { EkRoots } from '../verifier/ek-certificate.ts'

export interface AttestedReleaseParameters {
  /** The executor's peer (its registered libp2p peer id). */
  peer: RequestTarget
  grantId: Uint8Array
  /** The grant's ephemeral X25519 key: the only key the release may go to. */
  ephemeralKey: Uint8Array
  /** NodeRegistry `attestationKeyHash` of the executor (32 bytes; zero = none registered). */
  registeredHash: Uint8Array
  /** The executor's attestation record (SPEC.md §9); default: the one sent with the evidence. */
  record?: AttestationRecord
  /** The node's last accepted quote clock, if the caller keeps one (monotonic checks). */
  previous?: QuoteClock
  /**
   * Record hashes already activated (credential activation runs once per record hash).
   * Default: one cache shared by every call in this process.
   */
  activations?: ActivationCache
  /**
   * The TPM makers' CA certificates (`parseEkRoots`): the record's EK must be certified by one
   * of them (ADR 0069). Without them, the EK is whatever key the executor registered.
   */
  ekRoots?: EkRoots | undefined
}

/** The process-wide default of {@link AttestedReleaseParameters.activations}. */
const defaultActivations = createActivationCache()

/**
 * Resolves with the accepted quote's clock (keep it as `previous` for this node), or throws.
 *
 * The first time a record hash is seen, its AK is activated against its EK on the executor's
 * TPM (TPM2_ActivateCredential, SPEC.md §5) before the quote is trusted.
 *
 * @throws {AttestationRefusedError} `details.reason` `unregistered`, `record-mismatch`,
 *   `ek-untrusted` (with `ekRoots`), `not-activated` (the AK is not in the TPM of the record's EK), `evidence` (with
 *   `details.check`), `unreachable`.
 */
export async function requireAttestedRelease(
  node: ProtocolDialer,
  params: AttestedReleaseParameters,
  options: RequestOptions = {},
): Promise<QuoteClock> {
  if (params.registeredHash.every((b) => b === 0)) {
    throw new AttestationRefusedError('The executor has no registered attestation key', {
      details: { reason: 'unregistered' },
    })
  }
  if (params.record !== undefined) checkRecord(params.record, params.registeredHash)
  let response: Awaited<ReturnType<typeof requestAttestation>>
  try {
    response = await requestAttestation(
      node,
      params.peer,
      { grantId: params.grantId, ephemeralKey: params.ephemeralKey },
      options,
    )
  } catch (cause) {
    throw new AttestationRefusedError('No attestation evidence from the executor', {
      details: {
        reason: 'unreachable',
        ...(cause instanceof DigicapError ? { wire: cause.code } : {}),
      },
      cause,
    })
  }
  let record = params.record
  if (record === undefined) {
    if (response.record === undefined) {
      throw new AttestationRefusedError('The executor sent no attestation record', {
        details: { reason: 'record-mismatch' },
      })
    }
    try {
      record = decodeAttestationRecord(response.record)
    } catch (cause) {
      throw new AttestationRefusedError('The executor’s attestation record is malformed', {
        details: { reason: 'record-mismatch' },
        cause,
      })
    }
    checkRecord(record, params.registeredHash)
  }
  const activations = params.activations ?? defaultActivations
  // before the cache, every time: a record activated without roots (another gate, another
  // config) is not trusted by one with roots, and a certificate can expire (review)
  if (params.ekRoots !== undefined) checkEkCertificate(record, params.ekRoots)
  if (!activations.has(params.registeredHash)) {
    await activateAttestationKey(node, params.peer, record, {
      ...options,
      ...(params.ekRoots === undefined ? {} : { ekRoots: params.ekRoots }),
    })
    activations.add(params.registeredHash)
  }
  try {
    const { attest } = verifyAttestation(response, {
      phase: 'before',
      attestationKey: record,
      bootPcrs: record.bootPcrs,
      ...(params.previous === undefined ? {} : { previous: params.previous }),
    })
    return attest.clockInfo
  } catch (cause) {
    if (!(cause instanceof DigicapError)) throw cause
    throw new AttestationRefusedError('The executor’s before-quote is not valid for this key', {
      details: {
        reason: 'evidence',
        check: cause.code,
      },
      cause,
    })
  }
}

function checkRecord(record: AttestationRecord, registeredHash: Uint8Array): void {
  let hash: Uint8Array
  try {
    hash = attestationRecordHash(record)
  } catch (cause) {
    throw new AttestationRefusedError('The attestation record is malformed', {
      details: { reason: 'record-mismatch' },
      cause,
    })
  }
  if (!equalBytes(hash, registeredHash)) {
    throw new AttestationRefusedError('The attestation record is not the registered one', {
      details: { reason: 'record-mismatch' },
    })
  }
}
