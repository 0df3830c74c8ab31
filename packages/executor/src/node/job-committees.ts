/**
 * Who sits on the committee of each of this executor's jobs, as the AttestationHub seated it
 * (ADR 0070). A job's grant id is public, so anyone can challenge the executor with it; only the
 * seated members' challenges end a phase hold (phase-hold.ts), and they are trusted challengers
 * of the attest endpoint (ADR 0067) from the grant on, ahead of strangers.
 *
 * A committee is read once its sortition window closed (the members are final then) and kept;
 * before that, reads of one job go one at a time, at most one every `pollMs`, so a flood of
 * challenges cannot turn into a flood of RPC reads. A member whose registered peer id does not
 * decode is left out of its committee (the others still count).
 */
import { toHex } from '@digicap/capsule-core'
import { peerIdFromMultihash } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import type { VerifierChain } from './verifier/types.ts'

export interface JobCommittees {
  /**
   * The base58 peer ids of the members seated on `jobId`'s committee (job id = grant id), as
   * registered in NodeRegistry; undefined while the committee is not seated (or the read failed).
   */
  seatedPeers(jobId: Uint8Array): Promise<ReadonlySet<string> | undefined>
  /**
   * Reads `jobId`'s committee until it is seated (every `pollMs`, at most `watchMs`), so its
   * members are trusted before they first challenge. Returns at once.
   */
  watch(jobId: Uint8Array): void
  /** Whether `peer` sits on the committee of a job read in the last `trustMs`. */
  trusts(peer: string): boolean
  /** Ends the watches. */
  stop(): void
}

export interface JobCommitteesInit {
  /** Least time between two reads of a job not seated yet, ms. Default 1000. */
  readonly pollMs?: number
  /**
   * How long `watch` reads a job that is not seated, ms. Default 3 min: a job is opened and
   * seated within its sortition window of the grant, or not at all (a capsule that asks for no
   * committee).
   */
  readonly watchMs?: number
  /** How long a seated committee's members stay trusted, ms. Default 30 min. */
  readonly trustMs?: number
  /** Seated committees kept (oldest dropped). Default 64. */
  readonly jobsKept?: number
}

export interface JobCommitteesComponents {
  /** The hub's seats and the registry's peer ids (`ethersVerifierChain` reads both). */
  readonly chain: Pick<VerifierChain, 'seats' | 'node'>
}

interface Job {
  peers?: ReadonlySet<string>
  /** When the committee was found seated (performance.now()). */
  seatedAt?: number
  /** The read in flight. */
  reading?: Promise<ReadonlySet<string> | undefined> | undefined
  /** When the last read of an unseated committee ended. */
  readAt?: number
}

/** The registered peer id bytes (a multihash) as a base58 peer id. */
function peerOf(registered: Uint8Array): string {
  return peerIdFromMultihash(Digest.decode(registered)).toString()
}

/**
 * @example
 * ```ts
 * const committees = hubCommittees()({ chain: ethersVerifierChain({ addresses, settlement, runner: provider }) })
 * const peers = await committees.seatedPeers(grantId) // undefined until seated
 * ```
 */
export function hubCommittees(
  init: JobCommitteesInit = {},
): (components: JobCommitteesComponents) => JobCommittees {
  const pollMs = init.pollMs ?? 1000
  const watchMs = init.watchMs ?? 3 * 60_000
  const trustMs = init.trustMs ?? 30 * 60_000
  const jobsKept = Math.max(1, init.jobsKept ?? 64)
  return ({ chain }) => {
    const jobs = new Map<string, Job>()
    const timers = new Set<ReturnType<typeof setTimeout>>()
    let stopped = false

    const jobOf = (key: string): Job => {
      let job = jobs.get(key)
      if (job === undefined) {
        job = {}
        jobs.set(key, job)
        // Unseated entries count too: a flood of grant ids cannot grow the map past the bound.
        // The oldest unseated entry goes first, so a wave of watches does not evict the seated
        // committees whose members are trusted.
        while (jobs.size > jobsKept) {
          const unseated = [...jobs].find(([k, j]) => k !== key && j.peers === undefined)?.[0]
          jobs.delete(unseated ?? (jobs.keys().next().value as string))
        }
      }
      return job
    }

    const read = async (jobId: Uint8Array): Promise<ReadonlySet<string> | undefined> => {
      const seats = await chain.seats(jobId)
      // Seats only get better until the window closes: a member is final only then.
      if (!seats.closed || seats.members.length === 0) return undefined
      // Each member on its own: one whose registered peer id does not decode (the registry
      // checks only its length, and a member may change it once seated) is left out, not the
      // whole committee.
      const peers = await Promise.all(
        seats.members.map(async (member) => {
          try {
            return peerOf((await chain.node(member)).peerId)
          } catch {
            return undefined
          }
        }),
      )
      return new Set(peers.filter((peer): peer is string => peer !== undefined))
    }

    const seatedPeers = (jobId: Uint8Array): Promise<ReadonlySet<string> | undefined> => {
      const job = jobOf(toHex(jobId))
      if (job.peers !== undefined) return Promise.resolve(job.peers)
      if (job.reading !== undefined) return job.reading
      if (job.readAt !== undefined && performance.now() - job.readAt < pollMs) {
        return Promise.resolve(undefined)
      }
      job.reading = read(jobId)
        .catch(() => undefined) // an RPC hiccup: not seated as far as we know, read again later
        .then((peers) => {
          job.reading = undefined
          job.readAt = performance.now()
          if (peers !== undefined) {
            job.peers = peers
            job.seatedAt = performance.now()
          }
          return peers
        })
      return job.reading
    }

    return {
      seatedPeers,
      watch(jobId) {
        const until = performance.now() + watchMs
        const tick = async () => {
          if (stopped || (await seatedPeers(jobId)) !== undefined) return
          if (performance.now() >= until) return
          const timer = setTimeout(() => {
            timers.delete(timer)
            void tick()
          }, pollMs)
          timer.unref?.()
          timers.add(timer)
        }
        void tick()
      },
      trusts(peer) {
        const now = performance.now()
        for (const job of jobs.values()) {
          if (job.peers?.has(peer) && now - (job.seatedAt ?? 0) < trustMs) return true
        }
        return false
      },
      stop() {
        stopped = true
        for (const t of timers) clearTimeout(t)
        timers.clear()
      },
    }
  }
}
