/**
 * A restarted verifier's signed-vote record against the chain (ADR 0093 amendment, helper 136).
 * A job's slots are pruned when the running node sees the job end; a job that ended while the
 * node was down, further back than the look-back of its start, was never seen again, and its
 * slots stayed for ever (enough of them and the record is `full`: the verifier signs nothing). So
 * at start the node asks the hub about each job its record holds open slots of.
 */
import { hexToBytes } from '@digicap/capsule-core'
import { beforeRoundId, type PbftSignedVotes } from '@digicap/committee'
import type { JobStatus, VerifierChain } from './types.ts'

/** Statuses after which no vote of the job is wanted again: its rounds are closed. */
const ENDED: ReadonlySet<JobStatus> = new Set(['certified', 'settled', 'timed-out'])

/** What {@link closeEndedJobs} did. */
export interface EndedJobs {
  /** Jobs that ended on chain: their rounds are closed, their slots gone. */
  readonly closed: string[]
  /** Jobs still open on chain: the member rejoins them. */
  readonly open: string[]
  /** Jobs the chain does not know or could not be asked about: their slots are kept. */
  readonly kept: string[]
}

/**
 * Closes the rounds of each job of `record`'s open slots that the hub says ended (certified,
 * settled, timed out). A job still open, unknown to the hub (a version-1 slot of a before round
 * names that round, not its job) or whose status cannot be read keeps its slots: fail safe, a
 * slot dropped too early could let the member sign another vote for it.
 */
export async function closeEndedJobs(
  record: PbftSignedVotes,
  chain: Pick<VerifierChain, 'status'>,
): Promise<EndedJobs> {
  const out: EndedJobs = { closed: [], open: [], kept: [] }
  for (const job of record.openJobs?.() ?? []) {
    if (!/^0x[0-9a-f]{64}$/.test(job)) {
      out.kept.push(job)
      continue
    }
    const id = hexToBytes(job as `0x${string}`)
    const status = await chain.status(id).catch(() => undefined)
    if (status !== undefined && ENDED.has(status)) {
      await record.close([beforeRoundId(id), id])
      out.closed.push(job)
    } else if (status === 'open' || status === 'seated') out.open.push(job)
    else out.kept.push(job)
  }
  return out
}
