/**
 * A job's PBFT rounds on this node (`/digicap/pbft/1.0.0`, `@digicap/committee`): the before
 * round (its id `beforeRoundId(jobId)`, ADR 0033) and the final round (the job id) share one
 * transport, registered as soon as the committee is seated, before this member has its values.
 * Votes of members that finished watching first wait in a bounded inbox per round instead of
 * being lost (the replica has no retransmission); a round's replica starts once its value is
 * known and takes its inbox first. Votes for any other id are refused. A libp2p node serves
 * the protocol for one job at a time, so jobs take turns (ADR 0032).
 */
import { type DigicapSigner, equalBytes, toHex } from '@digicap/capsule-core'
import {
  createPbftTransport,
  type PbftCertificate,
  type PbftCommittee,
  type PbftDomain,
  type PbftHost,
  type PbftMember,
  PbftReplica,
  type PbftTransport,
  type PbftValue,
} from '@digicap/committee'
import { PBFT_PROTOCOL, type PbftMessage } from '@digicap/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import { VerifierJobError } from './errors.ts'

/** Votes kept per round while this member is still watching. */
export const PBFT_INBOX_LIMIT = 256

export interface PbftRoundParameters {
  readonly committee: PbftCommittee
  readonly domain: PbftDomain
  /** The rounds' PBFT job ids (the before round's, the job's). */
  readonly roundIds: readonly Uint8Array[]
  readonly signer: DigicapSigner
  readonly viewTimeoutMs: number
  /** Votes kept per round while this member is still watching. Default {@link PBFT_INBOX_LIMIT}. */
  readonly inboxLimit?: number
}

export interface PbftRound {
  /**
   * Starts round `roundId`'s replica with this member's value; resolves with the certificate.
   * @throws {VerifierJobError} `pbft-timeout` after `ms` without 2f+1 commits of one value.
   */
  decide(roundId: Uint8Array, value: PbftValue, ms: number): Promise<PbftCertificate>
  readonly transport: PbftTransport
  /** Votes refused: malformed, for another round, not the sender's. */
  readonly refused: number
  /** Votes waiting in the inboxes for this member's values (at most the limit per round). */
  readonly waiting: number
  stop(): Promise<void>
}

/** Hands out the node's PBFT protocol to one job at a time. */
export function pbftRounds(host: PbftHost) {
  let tail: Promise<void> = Promise.resolve()
  return {
    /** Waits for the previous job's rounds to stop, then registers this job's. */
    async open(p: PbftRoundParameters): Promise<PbftRound> {
      let release!: () => void
      const previous = tail
      tail = new Promise<void>((r) => {
        release = r
      })
      await previous
      try {
        return await openRound(host, p, release)
      } catch (err) {
        release()
        throw err
      }
    },
  }
}

interface Slot {
  readonly id: Uint8Array
  inbox: [PbftMember, PbftMessage][]
  replica?: PbftReplica
}

async function openRound(
  host: PbftHost,
  p: PbftRoundParameters,
  release: () => void,
): Promise<PbftRound> {
  const limit = p.inboxLimit ?? PBFT_INBOX_LIMIT
  const slots = new Map<string, Slot>(p.roundIds.map((id) => [toHex(id), { id, inbox: [] }]))
  let refused = 0
  const transport = await createPbftTransport({
    node: host,
    committee: p.committee,
    // A member not yet connected is dialled by its registered peer id.
    dial: (member: PbftMember, signal: AbortSignal) =>
      host.dialProtocol(peerIdFromString(member.peerId), PBFT_PROTOCOL, { signal }),
    onMessage: async (from, message) => {
      const slot = [...slots.values()].find((s) => equalBytes(s.id, message.vote.jobId))
      if (slot === undefined) {
        refused++
        return
      }
      if (slot.replica === undefined) {
        if (slot.inbox.length >= limit) slot.inbox.shift()
        slot.inbox.push([from, message])
        return
      }
      await slot.replica.receive(from, message)
    },
  })
  let stopped = false
  return {
    transport,
    get refused() {
      return refused + transport.stats.rejected
    },
    get waiting() {
      return [...slots.values()].reduce((n, s) => n + s.inbox.length, 0)
    },
    async decide(roundId, value, ms) {
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
        viewTimeout: p.viewTimeoutMs,
        send: (to, message) => transport.send(to, message),
      })
      slot.replica = r
      await r.start()
      for (const [from, message] of slot.inbox.splice(0)) {
        await r.receive(from, message).catch(() => {
          refused++
        })
      }
      let timer: ReturnType<typeof setTimeout> | undefined
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
      })
      try {
        return await Promise.race([r.decided, late])
      } finally {
        clearTimeout(timer)
      }
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
