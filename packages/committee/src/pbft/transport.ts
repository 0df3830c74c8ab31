/**
 * PBFT over libp2p (`/digicap/pbft/1.0.0`, SPEC-PBFT.md §4): one frame per stream, one way.
 * Inbound streams from peers that are not committee members are aborted before a byte is read;
 * outbound messages wait in a bounded queue per member (the oldest is dropped when it is full),
 * so a slow or dead member costs the others a fixed amount of memory.
 */

import {
  decodePbftMessage,
  encodePbftMessage,
  PBFT_MAX_FRAME,
  PBFT_PROTOCOL,
  type PbftMessage,
  readMessage,
  sendMessage,
} from '@digicap/protocol'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { PbftCommittee, PbftMember } from './committee.ts'
import { PbftVoteError } from './errors.ts'

/** What the transport needs of a libp2p node. */
export type PbftHost = Pick<Libp2p, 'handle' | 'unhandle' | 'getConnections' | 'dialProtocol'> & {
  peerId: { toString(): string }
}

export interface PbftTransportOptions {
  node: PbftHost
  committee: PbftCommittee
  /** Called with each well-formed message of a member; may throw (counted, then ignored). */
  onMessage: (from: PbftMember, message: PbftMessage) => Promise<void> | void
  /** Messages waiting per member before the oldest is dropped. Default 64. */
  maxQueue?: number
  /** Largest frame body, bytes. Default 64 KiB. */
  maxSize?: number
  /** Time to read or send one frame, ms. Default 5000. */
  timeout?: number
  /** Opens a stream to a member with no open connection (default: no dial, the message is dropped). */
  dial?: (member: PbftMember, signal: AbortSignal) => Promise<Stream>
  /**
   * Told of every inbound message dropped, with its typed error: `PbftVoteError` (`non-member`
   * for a stream from outside the committee, aborted unread; the replica's reasons), or the wire
   * error of a frame that did not read or decode (`WireTooLargeError`, `WireTruncatedError`,
   * `WireFormatError`, `WireTimeoutError`, …). Must not throw (it is caught).
   */
  onRejected?: (error: Error, from: PbftMember | undefined) => void
}

/** Counters, for tests and metrics. */
export interface PbftTransportStats {
  received: number
  /** Streams from non-members, aborted unread. */
  nonMember: number
  /** Frames that did not decode, or that the replica refused. */
  rejected: number
  sent: number
  /** Outbound messages dropped (queue full, no connection, send failed). */
  dropped: number
  /**
   * Inbound refusals by error: `code` or `code:reason` (`PBFT_VOTE:replayed`,
   * `WIRE_TOO_LARGE`, …); `error` for anything untyped (a bug).
   */
  refused: Record<string, number>
}

/** `code` or `code:reason` of a refusal, as `stats.refused` counts it. */
function refusalKey(err: unknown): string {
  const e = err as { code?: unknown; details?: { reason?: unknown } }
  if (typeof e?.code !== 'string') return 'error'
  return typeof e.details?.reason === 'string' ? `${e.code}:${e.details.reason}` : e.code
}

export interface PbftTransport {
  /** Queues `message` for `to`, or for every other member when `to` is undefined. */
  send(to: PbftMember | undefined, message: PbftMessage): void
  readonly stats: PbftTransportStats
  stop(): Promise<void>
}

/** Registers the protocol handler on `node` and returns the transport. */
export async function createPbftTransport(options: PbftTransportOptions): Promise<PbftTransport> {
  const { node, committee } = options
  const maxQueue = options.maxQueue ?? 64
  const maxSize = options.maxSize ?? PBFT_MAX_FRAME
  const timeout = options.timeout ?? 5000
  const self = node.peerId.toString()
  const byPeer = new Map(committee.members.map((m) => [m.peerId, m]))
  const stats: PbftTransportStats = {
    received: 0,
    nonMember: 0,
    rejected: 0,
    sent: 0,
    dropped: 0,
    refused: {},
  }
  const refuse = (err: unknown, from: PbftMember | undefined): void => {
    const key = refusalKey(err)
    stats.refused[key] = (stats.refused[key] ?? 0) + 1
    try {
      options.onRejected?.(err instanceof Error ? err : new Error(String(err)), from)
    } catch {
      // An observer must not break the handler.
    }
  }
  const queues = new Map<string, Uint8Array[]>()
  const busy = new Set<string>()
  let stopped = false

  await node.handle(
    PBFT_PROTOCOL,
    async (stream: Stream, connection: Connection) => {
      const from = byPeer.get(connection.remotePeer.toString())
      if (from === undefined || stopped) {
        // Not a member: no read, no decode, no signature check.
        stats.nonMember++
        stream.abort(new Error('not a committee member'))
        refuse(
          new PbftVoteError('non-member', 'A stream from a peer outside the committee', {
            details: { peer: connection.remotePeer.toString() },
          }),
          undefined,
        )
        return
      }
      const signal = AbortSignal.timeout(timeout)
      try {
        const body = await readMessage(stream, { maxSize, signal })
        await stream.close({ signal }).catch(() => {})
        stats.received++
        await options.onMessage(from, decodePbftMessage(body))
      } catch (err) {
        stats.rejected++
        if (stream.status === 'open') stream.abort(new Error('rejected'))
        refuse(err, from)
      }
    },
    // A member sends a handful of votes per view; more concurrent streams are not needed.
    { maxInboundStreams: 16 },
  )

  async function open(member: PbftMember, signal: AbortSignal): Promise<Stream | undefined> {
    const connection = node
      .getConnections()
      .find((c) => c.remotePeer.toString() === member.peerId && c.status === 'open')
    // Optimistic protocol select: the protocol id travels with the frame (one round trip less).
    if (connection !== undefined) {
      return connection.newStream(PBFT_PROTOCOL, { signal, negotiateFully: false })
    }
    if (options.dial !== undefined) return options.dial(member, signal)
    return undefined
  }

  async function drain(member: PbftMember): Promise<void> {
    const queue = queues.get(member.peerId) as Uint8Array[]
    busy.add(member.peerId)
    try {
      for (let body = queue.shift(); body !== undefined && !stopped; body = queue.shift()) {
        const signal = AbortSignal.timeout(timeout)
        let stream: Stream | undefined
        try {
          stream = await open(member, signal)
          if (stream === undefined) {
            stats.dropped++
            continue
          }
          await sendMessage(stream, body, { maxSize, signal })
          await stream.close({ signal })
          stats.sent++
        } catch {
          stats.dropped++
          if (stream !== undefined && stream.status === 'open')
            stream.abort(new Error('send failed'))
        }
      }
    } finally {
      busy.delete(member.peerId)
    }
  }

  function enqueue(member: PbftMember, body: Uint8Array): void {
    let queue = queues.get(member.peerId)
    if (queue === undefined) {
      queue = []
      queues.set(member.peerId, queue)
    }
    queue.push(body)
    if (queue.length > maxQueue) {
      queue.shift()
      stats.dropped++
    }
    if (!busy.has(member.peerId)) void drain(member)
  }

  return {
    stats,
    send(to, message) {
      if (stopped) return
      const body = encodePbftMessage(message)
      for (const member of to === undefined ? committee.members : [to]) {
        if (member.peerId !== self) enqueue(member, body)
      }
    },
    async stop() {
      stopped = true
      await node.unhandle(PBFT_PROTOCOL)
    },
  }
}
