/**
 * PBFT over libp2p (`/digicap/pbft/1.0.0`, SPEC-PBFT.md §4), one way, frames on one long-lived
 * stream per peer (mux.ts). Inbound streams from peers that are not committee members are
 * aborted before a byte is read; outbound messages wait in a bounded queue per member (the
 * oldest is dropped when it is full), so a slow or dead member costs the others a fixed amount
 * of memory.
 */

import type { PbftMessage } from '@digicap/protocol'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { PbftCommittee, PbftMember } from './committee.ts'
import { createPbftMux } from './mux.ts'

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

export interface PbftTransport {
  /** Queues `message` for `to`, or for every other member when `to` is undefined. */
  send(to: PbftMember | undefined, message: PbftMessage): void
  readonly stats: PbftTransportStats
  stop(): Promise<void>
}

/**
 * Registers the protocol on `node` for one committee alone and returns its transport (a
 * {@link createPbftMux} endpoint with one session, stopped with it). A node that runs several
 * jobs' rounds at once opens sessions on one endpoint instead.
 */
export async function createPbftTransport(options: PbftTransportOptions): Promise<PbftTransport> {
  const {
    onRejected: _session,
    committee: _committee,
    onMessage: _onMessage,
    ...endpoint
  } = options
  const mux = await createPbftMux({ ...endpoint, maxSessions: 1 })
  const session = mux.open({
    committee: options.committee,
    onMessage: options.onMessage,
    ...(options.onRejected === undefined ? {} : { onRejected: options.onRejected }),
  })
  return {
    stats: session.stats,
    send: (to, message) => session.send(to, message),
    async stop() {
      await session.stop()
      await mux.stop()
    },
  }
}
