/**
 * @packageDocumentation
 *
 * `@digicap/committee` — who verifies a job. Each verifier draws a VRF ticket for the job's seed
 * (`drawTicket`, an ECVRF proof on secp256k1 from `@digicap/vrf`); top-k sortition weighted by
 * stake × reputation (ADR 0024) picks the committee; PBFT over libp2p decides its verdict and
 * yields a certificate the settlement contract checks; the earned reputation curve.
 *
 * Guarantees: a ticket's output is accepted only with a proof for that key and seed
 * (`verifyTicket` throws `@digicap/vrf`'s typed `VrfProofError` / `VrfKeyError` otherwise); every
 * observer given the same tickets draws the same committee, and `SortitionScore.sol` scores bit
 * for bit alike (integer-only ranking); a certificate holds 2f + 1 members' signatures, sorted
 * and unique (`verifyCertificate` throws a typed `CertificateError` otherwise).
 *
 * @example
 * ```ts
 * import { drawCommittee, drawTicket, jobSeed, selectionWeight, verifyTicket } from '@digicap/committee'
 *
 * const seed = jobSeed(jobId, grantBlockHash)
 * const mine = drawTicket(myEthereumKey, seed) // { publicKey, proof, beta }
 * const tickets = published.map((t) => ({
 *   id: t.address, beta: verifyTicket(t.publicKey, seed, t.proof), weight: selectionWeight(t.stake, t.reputation),
 * }))
 * const committee = drawCommittee(tickets, { faults: 1 }) // 4 members, leader first
 * ```
 */

export type { SortitionReason } from './errors.ts'
export { SortitionError } from './errors.ts'
export * from './pbft/index.ts'
export type { ReputationEvent } from './reputation/curve.ts'
export {
  nextReputation,
  passesToReach,
  REPUTATION_GROWTH_DIVISOR,
  REPUTATION_INITIAL,
  REPUTATION_MAX,
  reputationAfter,
} from './reputation/curve.ts'
export {
  BEFORE_FAIL,
  BEFORE_PASS,
  beforeCertificateCall,
  beforeRoundId,
} from './settlement/before.ts'
export type { HubValue, HubVote } from './settlement/calls.ts'
export {
  certificateCall,
  equivocationCall,
  equivocationReveal,
  hubCommittee,
  PASS_VERDICT,
  reportCommitment,
} from './settlement/calls.ts'
export type { DrawCommitteeOptions, RankedTicket, Ticket } from './sortition/committee.ts'
export {
  committeeSize,
  drawCommittee,
  rankTickets,
  selectionWeight,
} from './sortition/committee.ts'
export {
  LOG2_FRACTION_BITS,
  MIN_SORTITION_WEIGHT,
  negLog2Uniform,
  sortitionScore,
} from './sortition/score.ts'
export { jobSeed } from './sortition/seed.ts'
export type { CutoffHistory, TicketChain, TicketPlan } from './sortition/send-ticket.ts'
export {
  cutoffHistory,
  TICKET_PASSES_AHEAD,
  waitForWave,
  weightAhead,
} from './sortition/send-ticket.ts'
export type { VrfTicket } from './sortition/ticket.ts'
export { drawTicket, verifyTicket } from './sortition/ticket.ts'
export type { SeatCutoff, TicketWaveOptions } from './sortition/waves.ts'
export {
  canBeSeated,
  cutoffReference,
  MAX_TICKET_WAVES,
  ticketWave,
  ticketWaves,
} from './sortition/waves.ts'
