/**
 * The release gate of `attested()` (SPEC.md §10): before a keyguard releases a data key to a
 * grant's ephemeral key, it challenges the executor over `/digicap/attest/1.0.0` and releases
 * only if the answer is a valid "before" quote of the executor's registered attestation key,
 * bound to this grant and this ephemeral key, with PCR 23 at its reset value and the boot PCRs
 * as registered. The record comes from wherever the caller keeps it; it must hash to the
 * NodeRegistry's `attestationKeyHash`.
 */
import { DigicapError } from '@digicap/capsule-core'
import type { ProtocolDialer, RequestOptions, RequestTarget } from '@digicap/protocol'
import { equalBytes } from '../bytes.ts'
import { AttestationRefusedError } from '../errors.ts'
import { requestAttestation, verifyAttestation } from '../protocol/challenge.ts'
import { type AttestationRecord, attestationRecordHash } from '../registration/record.ts'
import type { QuoteClock } from '../verifier/clock.ts'

export interface AttestedReleaseParameters {
  /** The executor's peer (its registered libp2p peer id). */
  peer: RequestTarget
  grantId: Uint8Array
  /** The grant's ephemeral X25519 key: the only key the release may go to. */
  ephemeralKey: Uint8Array
  /** NodeRegistry `attestationKeyHash` of the executor (32 bytes; zero = none registered). */
  registeredHash: Uint8Array
  /** The executor's attestation record (SPEC.md §9). */
  record: AttestationRecord
  /** The node's last accepted quote clock, if the caller keeps one (monotonic checks). */
  previous?: QuoteClock
}

/**
 * Resolves with the accepted quote's clock (keep it as `previous` for this node), or throws.
 *
 * @throws {AttestationRefusedError} `details.reason` `unregistered`, `record-mismatch`,
 *   `evidence` (with `details.check`), `unreachable`.
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
  let recordHash: Uint8Array
  try {
    recordHash = attestationRecordHash(params.record)
  } catch (cause) {
    throw new AttestationRefusedError('The attestation record is malformed', {
      details: { reason: 'record-mismatch' },
      cause,
    })
  }
  if (!equalBytes(recordHash, params.registeredHash)) {
    throw new AttestationRefusedError('The attestation record is not the registered one', {
      details: { reason: 'record-mismatch' },
    })
  }
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
  try {
    const { attest } = verifyAttestation(response, {
      phase: 'before',
      attestationKey: params.record,
      bootPcrs: params.record.bootPcrs,
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
