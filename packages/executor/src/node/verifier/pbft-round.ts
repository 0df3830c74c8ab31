/**
 * One job's PBFT on this node (`/digicap/pbft/1.0.0`, `@digicap/committee`). The transport is
 * registered as soon as the committee is seated, before this member has its value, so the
 * votes of members that finished watching first wait in a bounded inbox instead of being lost
 * (the replica has no retransmission); the replica starts once the value is known and takes
 * the inbox first. A libp2p node serves the protocol for one job at a time, so rounds take
 * turns (ADR 0032).
 */
import type { DigicapSigner } from '@digicap/capsule-core'
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

/** Votes kept while this member is still watching the run. */
export const PBFT_INBOX_LIMIT = 256

export interface PbftRoundParameters {
  readonly committee: PbftCommittee
  readonly domain: PbftDomain
  readonly jobId: Uint8Array
  readonly signer: DigicapSigner
  readonly viewTimeoutMs: number
  /** Votes kept while this member is still watching. Default {@link PBFT_INBOX_LIMIT}. */
  readonly inboxLimit?: number
}

export interface PbftRound {
  /** Starts the replica with this member's value; resolves with the certificate, or throws after `ms`. */
  decide(value: PbftValue, ms: number): Promise<PbftCertificate>
  readonly transport: PbftTransport
  /** Votes refused by the replica (malformed, another job, not the sender's). */
  readonly refused: number
  /** Votes waiting in the inbox for this member's value (at most the inbox limit). */
  readonly waiting: number
  stop(): Promise<void>
}

/** Hands out the node's PBFT protocol to one round at a time. */
export function pbftRounds(host: PbftHost & { dialProtocol: PbftHost['dialProtocol'] }) {
  let tail: Promise<void> = Promise.resolve()
  return {
    /** Waits for the previous round to stop, then registers this one. */
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

async function openRound(
  host: PbftHost,
  p: PbftRoundParameters,
  release: () => void,
): Promise<PbftRound> {
  const inbox: [PbftMember, PbftMessage][] = []
  let replica: PbftReplica | undefined
  let refused = 0
  const transport = await createPbftTransport({
    node: host,
    committee: p.committee,
    // A member not yet connected is dialled by its registered peer id.
    dial: (member: PbftMember, signal: AbortSignal) =>
      host.dialProtocol(peerIdFromString(member.peerId), PBFT_PROTOCOL, { signal }),
    onMessage: async (from, message) => {
      if (replica === undefined) {
        if (inbox.length >= (p.inboxLimit ?? PBFT_INBOX_LIMIT)) inbox.shift()
        inbox.push([from, message])
        return
      }
      await replica.receive(from, message)
    },
  })
  let stopped = false
  const round: PbftRound = {
    transport,
    get refused() {
      return refused + transport.stats.rejected
    },
    get waiting() {
      return inbox.length
    },
    async decide(value, ms) {
      replica = new PbftReplica({
        domain: p.domain,
        committee: p.committee,
        jobId: p.jobId,
        signer: p.signer,
        value,
        viewTimeout: p.viewTimeoutMs,
        send: (to, message) => transport.send(to, message),
      })
      const r = replica
      await r.start()
      for (const [from, message] of inbox.splice(0)) {
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
      replica?.stop()
      await transport.stop()
      release()
    },
  }
  return round
}
