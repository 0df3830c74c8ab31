/**
 * The PBFT transport's types (SPEC-PBFT.md §4), apart from its implementations: mux.ts (one
 * endpoint, a session per job) and transport.ts (one committee alone) both speak them.
 */

import type { PbftMessage } from '@digicap/protocol'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { PbftCommittee, PbftMember } from './committee.ts'

/** Where a replica's messages go: `undefined` = every other member. */
export type PbftSend = (to: PbftMember | undefined, message: PbftMessage) => void

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
  /**
   * Opens a stream to a member with no open connection (default: no dial, the message is
   * dropped); undefined for a member it cannot reach (dropped too).
   */
  dial?: (member: PbftMember, signal: AbortSignal) => Promise<Stream | undefined>
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
