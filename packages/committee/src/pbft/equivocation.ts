/**
 * Equivocation (SPEC-PBFT.md §7): one member signed two votes of the same phase, job and view
 * with different values. Honest members never do; the proof is two signed votes, checkable by
 * anyone with the domain (and, for membership, the committee).
 */
import { type Address, CapsuleSignatureError, equalBytes } from '@digicap/capsule-core'
import type { PbftPhase, PbftVote } from '@digicap/protocol'
import { memberByAddress, type PbftCommittee } from './committee.ts'
import { EquivocationError } from './errors.ts'
import { type PbftDomain, recoverVoteSigner } from './typed-data.ts'

/** Two conflicting signed votes of `member`. */
export interface EquivocationProof {
  member: Address
  a: PbftVote
  b: PbftVote
}

/**
 * The phases whose double votes the hub slashes: the three PBFT phases and, since ADR 0092, the
 * observation (one per member and round, view 0: two different ones are two signed claims).
 */
export const SLASHABLE: ReadonlySet<PbftPhase> = new Set([
  'pre-prepare',
  'prepare',
  'commit',
  'observation',
])

/** True when `a` and `b` are the same slot (phase, job, view) with different values. */
export function conflicting(a: PbftVote, b: PbftVote): boolean {
  return (
    a.phase === b.phase &&
    a.view === b.view &&
    equalBytes(a.jobId, b.jobId) &&
    (a.verdict !== b.verdict || !equalBytes(a.evidenceHash, b.evidenceHash))
  )
}

/**
 * Checks an equivocation proof: both votes are pre-prepare, prepare, commit or observation votes
 * of the same phase, job and view with different values, both signed by `member`, a committee
 * member.
 *
 * @throws {EquivocationError} with `reason` `phase`, `not-conflicting`, `signature` or `non-member`.
 */
export function verifyEquivocation(
  proof: EquivocationProof,
  domain: PbftDomain,
  committee: PbftCommittee,
): void {
  const { a, b } = proof
  if (!SLASHABLE.has(a.phase) || !SLASHABLE.has(b.phase)) {
    // A view change's fields are not one slot: its sender may sign one per view it asks for.
    throw new EquivocationError(
      'phase',
      'Only pre-prepare, prepare, commit and observation votes are evidence',
    )
  }
  if (!conflicting(a, b)) {
    throw new EquivocationError('not-conflicting', 'The two votes do not conflict')
  }
  if (memberByAddress(committee, proof.member) === undefined) {
    throw new EquivocationError('non-member', 'The accused is not a committee member', {
      details: { member: proof.member },
    })
  }
  for (const [name, vote] of [
    ['a', a],
    ['b', b],
  ] as const) {
    let signer: Address
    try {
      signer = recoverVoteSigner(domain, vote)
    } catch (cause) {
      if (!(cause instanceof CapsuleSignatureError)) throw cause
      throw new EquivocationError('signature', `Vote ${name} has a malformed signature`, { cause })
    }
    if (signer.toLowerCase() !== proof.member.toLowerCase()) {
      throw new EquivocationError('signature', `Vote ${name} is not signed by the accused`, {
        details: { vote: name, signer },
      })
    }
  }
}
