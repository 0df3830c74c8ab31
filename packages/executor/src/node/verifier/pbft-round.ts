/**
 * A node's PBFT rounds (`/digicap/pbft/1.0.0`, `@digicap/committee`), several jobs at a time on
 * one endpoint (`createPbftMux`: one registration, one long-lived stream per peer). Each job is a
 * session with its own committee and state: the before round (its id `beforeRoundId(jobId)`,
 * ADR 0033) and the final round (the job id), opened as soon as the committee is seated, before
 * this member has its values. Votes of members that finished watching first wait in a bounded
 * inbox per round instead of being lost (the replica has no retransmission); a round's replica
 * starts once its value is known and takes its inbox first. Votes for a job no session holds are
 * refused by the endpoint before any signature check (ADR 0040).
 *
 * Deciding and certifying are apart (ADR 0053): `decide` resolves at the committee's verdict
 * (2f+1 counted commits) without a signature check; only the member that submits the
 * certificate builds it (`certify`, 2f+1 signature checks), the view's leader first and a
 * backup when the leader's certificate does not land.
 *
 * At most `maxJobs` jobs run at once; a further job waits for a slot (back-pressure, first come
 * first served), and past `maxWaiting` waiting jobs `open` refuses at once with
 * `VerifierJobError` `busy`.
 */
import { type DigicapSigner, equalBytes, toHex } from '@digicap/capsule-core'
import {
  createPbftMux,
  type EquivocationProof,
  type PbftCertificate,
  type PbftCertificateMode,
  type PbftCommittee,
  type PbftDecision,
  type PbftDomain,
  type PbftHost,
  type PbftMember,
  type PbftMux,
  PbftReplica,
  type PbftSignedVotes,
  type PbftTransport,
  type PbftTransportStats,
  type PbftValue,
} from '@digicap/committee'
import { PBFT_PROTOCOL, type PbftMessage } from '@digicap/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import { VerifierJobError } from './errors.ts'

/**
 * The prefix of a committee member's placeholder peer id when its registered one does not decode
 * (`committeePeer`): never dialled, and no stream comes from it.
 */
export const UNREACHABLE_PEER = 'unreachable:'

/** Votes kept per round while this member is still watching. */
export const PBFT_INBOX_LIMIT = 256
/**
 * Distinct votes kept per member and round while this member is still watching (an honest
 * member sends one vote per phase and view; its re-sends are copies, kept once).
 */
export const PBFT_INBOX_PER_MEMBER = 8
/** Jobs whose rounds run at once on a node, by default. */
export const PBFT_MAX_JOBS = 8

export interface PbftRoundParameters {
  readonly committee: PbftCommittee
  readonly domain: PbftDomain
  /** The rounds' PBFT job ids (the before round's, the job's). */
  readonly roundIds: readonly Uint8Array[]
  readonly signer: DigicapSigner
  /** The member's signed-vote record (ADR 0093): every vote of its replicas goes through it. */
  readonly signedVotes?: PbftSignedVotes
  readonly viewTimeoutMs: number
  /** Votes kept per round while this member is still watching. Default {@link PBFT_INBOX_LIMIT}. */
  readonly inboxLimit?: number
  /**
   * Distinct votes kept per member and round while this member is still watching (a copy of a
   * kept vote is dropped; past the limit the member's oldest goes). Default
   * {@link PBFT_INBOX_PER_MEMBER}.
   */
  readonly inboxPerMember?: number
  /** Gives up waiting for a free slot (the job is then `stopped`). */
  readonly signal?: AbortSignal
  /**
   * Told once per member and round of a member caught signing two values in one slot, with the
   * proof (both signatures checked) and the round's id. Must not throw (it is caught).
   */
  readonly onEquivocation?: (proof: EquivocationProof, roundId: Uint8Array) => void
  /**
   * When a member builds a round's certificate: `on-request` (default: only when `certify` is
   * called, by the member that submits it) or `at-decision` (every member, and `decide` waits
   * for it: the verifier path before ADR 0053, kept for the bench's baseline).
   */
  readonly certificate?: PbftCertificateMode
}

export interface PbftRound {
  /**
   * Starts round `roundId`'s replica with this member's value (its observation) and `evidence`,
   * its statement's hash for any verdict (ADR 0087: the committee decides the verdict the
   * members' observations justify, which may differ from this member's); resolves with the
   * committee's decision (2f+1 counted commits of one value in one view; no signature checked).
   * @throws {VerifierJobError} `pbft-timeout` after `ms` without 2f+1 commits of one value;
   * `stopped` once `signal` fires (the caller no longer waits: the node stops, or the chain holds
   * the round's certificate already; the round's replica stops then); `round` for a round not of this job, or started already.
   */
  decide(
    roundId: Uint8Array,
    value: PbftValue,
    ms: number,
    signal?: AbortSignal,
    evidence?: (verdict: number) => Uint8Array,
  ): Promise<PbftDecision>
  /**
   * Builds round `roundId`'s certificate (2f+1 commits whose signatures hold): the member that
   * submits it. Waits for the decision if it has not come yet.
   * @throws {VerifierJobError} `pbft-timeout` after `ms` without such commits; `stopped` once
   * `signal` fires; `round` for a round not of this job, or not started.
   */
  certify(roundId: Uint8Array, ms: number, signal?: AbortSignal): Promise<PbftCertificate>
  /** Certificates this job's rounds built (with `on-request`, only the rounds this member certified). */
  readonly certified: number
  /** This job's session: what its members sent it and what it sent. */
  readonly transport: PbftTransport
  /** Votes refused: malformed, not the sender's, not valid for the round. */
  readonly refused: number
  /** The equivocations this job's rounds caught: one proof per member and round. */
  readonly equivocations: readonly EquivocationProof[]
  /** Votes waiting in the inboxes for this member's values (at most the limit per round). */
  readonly waiting: number
  /** Ends the job's rounds and frees its slot. */
  stop(): Promise<void>
}

export interface PbftRoundsOptions {
  /** Jobs whose rounds run at once. Default {@link PBFT_MAX_JOBS}. */
  readonly maxJobs?: number
  /** Jobs that may wait for a slot; one more is refused (`busy`). Default `maxJobs`. */
  readonly maxWaiting?: number
}

export interface PbftRounds {
  /**
   * Opens a job's rounds, waiting for a free slot when `maxJobs` run.
   * @throws {VerifierJobError} `busy` when `maxWaiting` jobs already wait; `round` when a round id
   * is another open job's; `stopped` when `p.signal` fires or the rounds stopped while waiting.
   */
  open(p: PbftRoundParameters): Promise<PbftRound>
  /** Jobs running now. */
  readonly running: number
  /** Jobs waiting for a slot. */
  readonly queued: number
  /** Input the endpoint refused before any job saw it (outsiders, unknown job ids). */
  readonly stats: PbftTransportStats | undefined
  /** Unregisters the protocol; waiting jobs are refused (`stopped`). */
  stop(): Promise<void>
}

/** A node's PBFT rounds: one endpoint, up to `maxJobs` jobs at once. */
export function pbftRounds(host: PbftHost, options: PbftRoundsOptions = {}): PbftRounds {
  const maxJobs = options.maxJobs ?? PBFT_MAX_JOBS
  const maxWaiting = options.maxWaiting ?? maxJobs
  const waiting: { go: () => void; fail: (e: Error) => void }[] = []
  let running = 0
  let endpoint: Promise<PbftMux> | undefined
  let mux: PbftMux | undefined
  let stopped = false
  const muxOf = () => {
    endpoint ??= createPbftMux({
      node: host,
      maxSessions: maxJobs,
      // A member not yet connected is dialled by its registered peer id (an unreachable one not).
      dial: async (member: PbftMember, signal: AbortSignal) =>
        member.peerId.startsWith(UNREACHABLE_PEER)
          ? undefined
          : host.dialProtocol(peerIdFromString(member.peerId), PBFT_PROTOCOL, { signal }),
    }).then((m) => {
      mux = m
      return m
    })
    return endpoint
  }
  const release = () => {
    const next = waiting.shift()
    if (next !== undefined) next.go()
    else running--
  }
  const stoppedError = () => new VerifierJobError('stopped', 'The verifier stopped')
  return {
    get running() {
      return running
    },
    get queued() {
      return waiting.length
    },
    get stats() {
      return mux?.stats
    },
    async open(p) {
      if (stopped) throw stoppedError()
      if (running >= maxJobs) {
        if (waiting.length >= maxWaiting) {
          throw new VerifierJobError(
            'busy',
            'This verifier runs and queues as many jobs as it may',
            {
              details: { running, waiting: waiting.length, maxJobs, maxWaiting },
              hint: 'The job is left to the other members; raise maxJobs or maxWaiting for more.',
            },
          )
        }
        // The slot is handed over by the job that ends (running stays counted).
        await new Promise<void>((go, fail) => {
          const entry = { go, fail }
          waiting.push(entry)
          p.signal?.addEventListener(
            'abort',
            () => {
              const at = waiting.indexOf(entry)
              if (at < 0) return
              waiting.splice(at, 1)
              fail(stoppedError())
            },
            { once: true },
          )
        })
      } else {
        running++
      }
      try {
        if (stopped) throw stoppedError()
        return await openRound(await muxOf(), p, release)
      } catch (err) {
        release()
        throw err
      }
    },
    async stop() {
      if (stopped) return
      stopped = true
      for (const w of waiting.splice(0)) w.fail(stoppedError())
      await (await endpoint)?.stop()
    },
  }
}

interface Slot {
  readonly id: Uint8Array
  inbox: [PbftMember, PbftMessage][]
  replica?: PbftReplica
}

async function openRound(
  mux: PbftMux,
  p: PbftRoundParameters,
  release: () => void,
): Promise<PbftRound> {
  const limit = p.inboxLimit ?? PBFT_INBOX_LIMIT
  const perMember = Math.max(1, p.inboxPerMember ?? PBFT_INBOX_PER_MEMBER)
  const slots = new Map<string, Slot>(p.roundIds.map((id) => [toHex(id), { id, inbox: [] }]))
  let refused = 0
  const equivocations: EquivocationProof[] = []
  /** `${round}/${member}` of the proofs kept: one per member and round. */
  const accused = new Set<string>()
  const caught = (roundId: Uint8Array) => (proof: EquivocationProof) => {
    const key = `${toHex(roundId)}/${proof.member.toLowerCase()}`
    if (accused.has(key)) return
    accused.add(key)
    equivocations.push(proof)
    try {
      p.onEquivocation?.(proof, roundId)
    } catch {
      // An observer must not break the round.
    }
  }
  let transport: PbftTransport
  try {
    transport = mux.open({
      committee: p.committee,
      jobIds: p.roundIds,
      onMessage: async (from, message) => {
        // The endpoint routes only this job's round ids here.
        const slot = slots.get(toHex(message.vote.jobId)) as Slot
        if (slot.replica === undefined) {
          keep(slot, from, message)
          return
        }
        await slot.replica.receive(from, message)
      },
    })
  } catch (cause) {
    // PbftBusyError: another open job holds one of these round ids.
    throw new VerifierJobError('round', 'Another job on this node holds one of these rounds', {
      details: { roundIds: p.roundIds.map((id) => toHex(id)) },
      cause,
    })
  }
  /**
   * Keeps a vote for the round's replica: once (a member's re-sends are copies), at most
   * `perMember` of one member (its oldest dropped), at most `limit` in all (the oldest dropped).
   */
  function keep(slot: Slot, from: PbftMember, message: PbftMessage): void {
    const { vote } = message
    let mine = 0
    let oldest = -1
    for (const [at, [member, held]] of slot.inbox.entries()) {
      if (member.address !== from.address) continue
      if (
        held.vote.phase === vote.phase &&
        held.vote.view === vote.view &&
        equalBytes(held.vote.signature, vote.signature)
      ) {
        return
      }
      if (mine++ === 0) oldest = at
    }
    if (mine >= perMember) slot.inbox.splice(oldest, 1)
    else if (slot.inbox.length >= limit) slot.inbox.shift()
    slot.inbox.push([from, message])
  }
  let stopped = false
  const certifying = p.certificate ?? 'on-request'
  /** `work`, or `pbft-timeout` after `ms`, or `stopped` once `signal` fires (its timer cleared). */
  const within = async <T>(
    work: Promise<T>,
    r: PbftReplica,
    ms: number,
    signal: AbortSignal | undefined,
  ): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let left: (() => void) | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new VerifierJobError('pbft-timeout', 'The committee did not decide in time', {
              details: { ms, view: String(r.view) },
              hint: 'Fewer than 2f+1 members agreed (silent members, or members that saw another run).',
            }),
          ),
        ms,
      )
      left = () => {
        // Left: nothing is asked of this round any more (its timer and re-sends stop with it).
        r.stop()
        reject(
          new VerifierJobError('stopped', 'The round was left before it ended here', {
            details: { view: String(r.view) },
            cause: signal?.reason,
          }),
        )
      }
      if (signal?.aborted) left()
      else signal?.addEventListener('abort', left, { once: true })
    })
    try {
      return await Promise.race([work, late])
    } finally {
      clearTimeout(timer)
      if (left !== undefined) signal?.removeEventListener('abort', left)
    }
  }
  return {
    transport,
    get certified() {
      return [...slots.values()].filter((s) => s.replica?.certificate !== undefined).length
    },
    get refused() {
      return refused + transport.stats.rejected
    },
    equivocations,
    get waiting() {
      return [...slots.values()].reduce((n, s) => n + s.inbox.length, 0)
    },
    async decide(roundId, value, ms, signal, evidence) {
      const slot = slots.get(toHex(roundId))
      if (slot === undefined || slot.replica !== undefined) {
        throw new VerifierJobError('round', 'Not a round of this job, or decided already', {
          details: { roundId: toHex(roundId) },
        })
      }
      const r = new PbftReplica({
        domain: p.domain,
        committee: p.committee,
        jobId: roundId,
        signer: p.signer,
        value,
        ...(evidence === undefined ? {} : { evidence }),
        viewTimeout: p.viewTimeoutMs,
        certificate: certifying,
        send: (to, message) => transport.send(to, message),
        onEquivocation: caught(roundId),
        ...(p.signedVotes === undefined ? {} : { signedVotes: p.signedVotes }),
      })
      slot.replica = r
      await r.start()
      for (const [from, message] of slot.inbox.splice(0)) {
        await r.receive(from, message).catch(() => {
          refused++
        })
        // A refused vote settles in a microtask: without a turn of the event loop between votes
        // the replay would hold the node (its other jobs, pings, timers) until it ends.
        await new Promise((resolve) => setImmediate(resolve))
      }
      // at-decision: the decision is known once the certificate is (the old verifier path).
      const decision = certifying === 'at-decision' ? r.decided : r.verdict
      const d = await within<PbftDecision>(decision, r, ms, signal)
      return { view: d.view, verdict: d.verdict, evidenceHash: d.evidenceHash }
    },
    async certify(roundId, ms, signal) {
      const r = slots.get(toHex(roundId))?.replica
      if (r === undefined) {
        throw new VerifierJobError('round', 'Not a round of this job, or not started', {
          details: { roundId: toHex(roundId) },
        })
      }
      return await within(r.certify(), r, ms, signal)
    },
    async stop() {
      if (stopped) return
      stopped = true
      for (const s of slots.values()) s.replica?.stop()
      await transport.stop()
      release()
    },
  }
}
