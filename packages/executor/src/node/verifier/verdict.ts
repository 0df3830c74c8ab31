/**
 * A member's value for PBFT (SPEC-PBFT §2): the verdict bits of the three run phases and the
 * hash of the evidence statement. Each member challenges with its own nonces, so the quotes
 * differ between members; what they agree on is the statement (ADR 0032): this job, the
 * executor's registered record, the grant's measurement and ephemeral key, and which phases
 * passed. Honest members that saw the same run compute the same bytes.
 */
import { createHash } from 'node:crypto'
import type { Phase } from '@digicap/attestation'
import { AbiCoder, getBytes, keccak256 } from 'ethers'
import type { JobGrant, PhaseVerdict } from './types.ts'

const PHASE_BITS: Record<Phase, number> = { before: 1, during: 2, after: 4 }

/** Evidence statement tag (a change to the statement bumps it). */
export const EVIDENCE_TAG = 'digicap-committee-evidence-v1'

/** Bit i set = phase i verified (0 before, 1 during, 2 after); 7 = pass. */
export function verdictBits(phases: readonly PhaseVerdict[]): number {
  let bits = 0
  for (const p of phases) if (p.verdict === 'verified') bits |= PHASE_BITS[p.phase]
  return bits
}

/** keccak-256 of abi.encode(tag, jobId, recordHash, measurement, sha256(ephemeralKey), verdict). */
export function evidenceHash(p: {
  readonly jobId: Uint8Array
  readonly recordHash: Uint8Array
  readonly grant: JobGrant
  readonly verdict: number
}): Uint8Array {
  const keyHash = createHash('sha256').update(p.grant.ephemeralKey).digest()
  const encoded = AbiCoder.defaultAbiCoder().encode(
    ['string', 'bytes32', 'bytes32', 'bytes32', 'bytes32', 'uint8'],
    [EVIDENCE_TAG, p.jobId, p.recordHash, p.grant.measurement, keyHash, p.verdict],
  )
  return getBytes(keccak256(encoded))
}
