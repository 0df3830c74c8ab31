/**
 * The `attested()` challenge of a fast-path request, run BEFORE the capsule's lock is taken
 * (ADR 0031). Under the lock, a registered executor that took the challenge and never answered
 * held every request for that capsule for the challenge's time limit; outside it, it holds only
 * its own request (the gate serializes challenges per executor, not per capsule).
 *
 * The quote must be bound to the grant id the request gets, whose run index is only final under
 * the lock. So the challenge binds the predicted run index (the chain's run count, never below
 * what our own recorded audits proved), and the lock holder compares: the same grant id, or it
 * gives the lock back and the request is challenged again for the run index it saw
 * ({@link MAX_ATTEST_ROUNDS} rounds at most, then `busy`). No lock is held while a peer is
 * waited on.
 */
import type { PeerId } from '@libp2p/interface'
import type { AttestationGate } from '../release/attestation-gate.ts'

/** Challenges of one request before it is answered `busy` `attestation-raced`. */
export const MAX_ATTEST_ROUNDS = 3

export interface AttestOutsideLockParameters {
  readonly capsuleId: string
  readonly executor: string
  /** The requesting (registered, authenticated) peer. */
  readonly peer: PeerId
  readonly ephemeralKey: Uint8Array
  /** The grant id this request gets at a run index. */
  readonly grantIdAt: (runIndex: bigint) => string
  /** The run index to bind: the lock holder's, or a prediction. */
  readonly runIndex: () => Promise<bigint>
}

/**
 * `undefined` when the capsule's policy does not require `attested()`; else the grant id the
 * accepted before-quote is bound to.
 * @throws {NotAttestedError} the evidence was refused (no lock is held).
 * @throws {QuorumError} the RPCs disagree.
 */
export async function attestOutsideLock(
  gate: AttestationGate,
  p: AttestOutsideLockParameters,
): Promise<string | undefined> {
  const requirement = await gate.requirement(p.capsuleId, p.executor)
  if (requirement === undefined) return undefined
  const grantId = p.grantIdAt(await p.runIndex())
  await gate.attest(requirement, { peer: p.peer, grantId, ephemeralKey: p.ephemeralKey })
  return grantId
}
