/**
 * The `seq` of a member's signed attestation challenges for one job (SPEC-PBFT §9, ADR 0095).
 *
 * A challenge's nonce is the hash of a deterministic signature over (job, block hash, seq). A
 * counter that starts at 0 gives a member restarted within one block (a crash, an upgrade) the
 * same nonce it gave before, and the executor could answer it with the quote it took then,
 * before it swapped the run. A counter that starts at a random value below 2^63 never repeats
 * one across restarts (two lives meet with odds 2^-63 per challenge), and counts up by one from
 * there, so two challenges of one life in one block still differ. Receivers do not look at seq.
 */
import { randomBytes } from 'node:crypto'

/** The next seq of one watch of a job: a random start below 2^63, then one more each call. */
export function challengeCounter(random: (n: number) => Uint8Array = randomBytes): () => bigint {
  const start = Buffer.from(random(8)).readBigUInt64BE(0) >> 1n
  let next = start
  return () => next++
}
