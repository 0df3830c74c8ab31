/**
 * Arguments of AttestationHub's calls (packages/contracts/contracts/committee/AttestationHub.sol,
 * ADR 0027), built from what the PBFT code produces, for an off-chain verifier (or anyone) to
 * submit with any Ethereum client: `submitCertificate(value, committee, signatures)` and
 * `reportEquivocation(jobId, committee, a, b)`, and the commit–reveal that pays a reporter
 * (`reportCommitment`, `equivocationReveal`, ADR 0096). Pure data, no chain access.
 */
import {
  type Address,
  concatBytes,
  hexToBytes,
  InvalidArgumentError,
  normalizeAddress,
  toHex,
} from '@digicap/capsule-core'
import type { PbftPhase, PbftVote } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { PbftCertificate } from '../pbft/certificate.ts'
import type { EquivocationProof } from '../pbft/equivocation.ts'

/** `CommitteeCertificate.Value` as the ABI takes it. */
export interface HubValue {
  jobId: `0x${string}`
  viewNumber: bigint
  verdict: number
  evidenceHash: `0x${string}`
}

/** `AttestationHub.Vote` as the ABI takes it (phase 0 pre-prepare, 1 prepare, 2 commit). */
export interface HubVote {
  phase: number
  viewNumber: bigint
  verdict: number
  evidenceHash: `0x${string}`
  signature: `0x${string}`
}

/** The verdict that settles a job as a pass: every run phase (before, during, after) passed. */
export const PASS_VERDICT = 7

const PHASE_NUMBER: Partial<Record<PbftPhase, number>> = {
  'pre-prepare': 0,
  prepare: 1,
  commit: 2,
  observation: 3, // ADR 0092
}

const byAddress = (a: string, b: string): number => {
  const x = BigInt(a)
  const y = BigInt(b)
  return x < y ? -1 : x > y ? 1 : 0
}

/**
 * The committee as the hub stores it: ascending by address, as `CommitteeSeated` lists it
 * (the PBFT committee is in VRF order, leader first).
 */
export function hubCommittee(
  members: readonly { address: Address }[] | readonly Address[],
): Address[] {
  return members.map((m) => (typeof m === 'string' ? m : m.address)).sort(byAddress)
}

/**
 * `submitCertificate`'s arguments: `signerBits` (bit i: member i of the sorted committee
 * signed), `others` (the members that did not sign, ascending) and the signers' 65-byte
 * signatures concatenated in committee order. The hub recovers the signers and rebuilds the
 * committee from both: the members who signed are never sent (calldata is the main cost).
 *
 * @throws {InvalidArgumentError} when a signer is not in `committee` or a signature is not 65 bytes.
 */
export function certificateCall(
  certificate: PbftCertificate,
  committee: readonly Address[],
): {
  value: HubValue
  signerBits: bigint
  others: Address[]
  signatures: `0x${string}`
} {
  const sorted = hubCommittee(committee)
  const bySigner = new Map(
    certificate.signers.map((s, i) => [s.toLowerCase(), certificate.signatures[i]] as const),
  )
  let signerBits = 0n
  const others: Address[] = []
  const signatures: Uint8Array[] = []
  sorted.forEach((member, i) => {
    const sig = bySigner.get(member.toLowerCase())
    if (sig === undefined) {
      others.push(member)
      return
    }
    if (sig.length !== 65) {
      throw new InvalidArgumentError('Each certificate signature must be 65 bytes', {
        details: { field: 'signatures' },
      })
    }
    signerBits |= 1n << BigInt(i)
    signatures.push(sig)
  })
  if (signatures.length !== bySigner.size) {
    throw new InvalidArgumentError('A certificate signer is not a committee member', {
      details: { field: 'signers' },
    })
  }
  return {
    value: {
      jobId: toHex(certificate.jobId),
      viewNumber: certificate.view,
      verdict: certificate.verdict,
      evidenceHash: toHex(certificate.evidenceHash),
    },
    signerBits,
    others,
    signatures: toHex(concatBytes(...signatures)),
  }
}

function hubVote(vote: PbftVote): HubVote {
  const phase = PHASE_NUMBER[vote.phase]
  if (phase === undefined) {
    throw new InvalidArgumentError(
      'Only pre-prepare, prepare, commit and observation votes prove equivocation',
      {
        details: { field: 'phase' },
      },
    )
  }
  return {
    phase,
    viewNumber: vote.view,
    verdict: vote.verdict,
    evidenceHash: toHex(vote.evidenceHash),
    signature: toHex(vote.signature),
  }
}

/** `reportEquivocation`'s `jobId`, `a` and `b` for a proof `verifyEquivocation` accepted. */
export function equivocationCall(proof: EquivocationProof): {
  jobId: `0x${string}`
  a: HubVote
  b: HubVote
} {
  return { jobId: toHex(proof.a.jobId), a: hubVote(proof.a), b: hubVote(proof.b) }
}

const word = (n: bigint): Uint8Array => {
  const out = new Uint8Array(32)
  let v = n
  for (let i = 31; i >= 0 && v > 0n; i--, v >>= 8n) out[i] = Number(v & 0xffn)
  return out
}
const padded = (b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(Math.ceil(b.length / 32) * 32)
  out.set(b)
  return out
}
const bytes32 = (hex: string, name: string): Uint8Array => {
  const b = hexToBytes(hex as `0x${string}`)
  if (b.length !== 32) throw new InvalidArgumentError(`${name} is 32 bytes`, { details: { name } })
  return b
}
/** `abi.encode(Vote)`: four static words, the signature's offset (5 words), its length, its bytes. */
function encodeVote(v: HubVote): Uint8Array {
  const signature = hexToBytes(v.signature)
  return concatBytes(
    word(BigInt(v.phase)),
    word(v.viewNumber),
    word(BigInt(v.verdict)),
    bytes32(v.evidenceHash, 'evidenceHash'),
    word(5n * 32n),
    word(BigInt(signature.length)),
    padded(signature),
  )
}

/**
 * What `AttestationHub.commitReport` takes (ADR 0096): keccak256(abi.encode(round, a, b,
 * reporter, salt)), as the hub's `reportCommitment` computes it. `round` is the round the votes
 * were signed in (`proof.a.jobId`: the job id, or its before round's); `salt` 32 secret bytes.
 */
export function reportCommitment(
  round: Uint8Array,
  a: HubVote,
  b: HubVote,
  reporter: Address,
  salt: Uint8Array,
): `0x${string}` {
  if (round.length !== 32 || salt.length !== 32) {
    throw new InvalidArgumentError('round and salt are 32 bytes', {
      details: { round: round.length, salt: salt.length },
    })
  }
  const ea = encodeVote(a)
  const eb = encodeVote(b)
  const head = 5n * 32n
  return toHex(
    keccak_256(
      concatBytes(
        round,
        word(head),
        word(head + BigInt(ea.length)),
        word(BigInt(normalizeAddress(reporter, 'reporter'))),
        salt,
        ea,
        eb,
      ),
    ),
  )
}

/**
 * A reporter's two calls for a proof `verifyEquivocation` accepted (ADR 0096): first
 * `commitReport(commitment)`, then, `revealDelay` blocks or more later,
 * `revealEquivocation(jobId, committee, a, b, reporter, salt)` (or `revealBeforeEquivocation`
 * with the job's id for a before-round proof). The share goes to `reporter` whoever sends the
 * reveal: a copy of it pays the copier nothing.
 */
export function equivocationReveal(
  proof: EquivocationProof,
  reporter: Address,
  salt: Uint8Array,
): { commitment: `0x${string}`; a: HubVote; b: HubVote; reporter: Address; salt: `0x${string}` } {
  const { a, b } = equivocationCall(proof)
  const commitment = reportCommitment(proof.a.jobId, a, b, reporter, salt)
  return { commitment, a, b, reporter: normalizeAddress(reporter, 'reporter'), salt: toHex(salt) }
}
