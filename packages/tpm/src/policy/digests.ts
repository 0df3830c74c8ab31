/**
 * Policy digests computed in software (TPM 2.0 Part 3 §23): what a key's `authPolicy` must be,
 * and what an owner signs to authorize a PCR set.
 *
 * - PolicyPCR: `H(old ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ pcrDigest)`
 * - PolicyAuthorize: `H(H(0…0 ‖ TPM_CC_PolicyAuthorize ‖ keySign.name) ‖ policyRef)` (the session
 *   digest is reset first, so this is the key's whole `authPolicy`)
 * - the approval the owner signs: `aHash = H(approvedPolicy ‖ policyRef)`
 */
import { createHash } from 'node:crypto'
import { TpmWriter } from '../marshal.ts'
import { TPM_CC } from '../session/constants.ts'
import { pcrSelection } from './pcr.ts'

const ZERO = new Uint8Array(32)
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const cc = (code: number) => new TpmWriter().u32(code).bytes()

/** The digest of a fresh session after `TPM2_PolicyPCR(pcrDigest, pcrs)`. */
export function policyPcrDigest(pcrs: readonly number[], pcrDigest: Uint8Array): Uint8Array {
  return sha256(ZERO, cc(TPM_CC.PolicyPCR), pcrSelection(pcrs), pcrDigest)
}

/** The `authPolicy` of a key any policy signed by `keySignName` unlocks. */
export function policyAuthorizeDigest(
  keySignName: Uint8Array,
  policyRef: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return sha256(sha256(ZERO, cc(TPM_CC.PolicyAuthorize), keySignName), policyRef)
}

/** What the authorizing key signs to approve `approvedPolicy`. */
export function approvalHash(
  approvedPolicy: Uint8Array,
  policyRef: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return sha256(approvedPolicy, policyRef)
}
