/**
 * A node's PBFT endpoint (`/digicap/pbft/1.0.0`, SPEC-PBFT.md §4): the protocol is registered
 * once per libp2p node and carries the rounds of several jobs at a time, each a session with its
 * own committee and job ids. Frames travel on one long-lived stream per peer and direction (no
 * stream open, protocol select or close per vote); a stream that failed is replaced once per
 * frame. Inbound streams from peers in no open session's committee are aborted before a byte is
 * read; a frame for a job no session holds is refused before any signature check, so a flood of
 * bogus job ids costs a decode each and never reaches a replica.
 */

import { toHex } from '@digicap/capsule-core'
import {
  decodePbftMessage,
  encodePbftMessage,
  PBFT_MAX_FRAME,
  PBFT_PROTOCOL,
  type PbftMessage,
  readMessages,
  sendMessage,
} from '@digicap/protocol'
import type { Connection, Stream } from '@libp2p/interface'
import type { PbftCommittee, PbftMember } from './committee.ts'
import { PbftBusyError, PbftVoteError } from './errors.ts'
import type {
  PbftHost,
  PbftTransport,
  PbftTransportOptions,
  PbftTransportStats,
} from './transport-types.ts'

/** Sessions (jobs) a node's PBFT endpoint carries at once by default. */
export const PBFT_MAX_SESSIONS = 8

export interface PbftMuxOptions
  extends Pick<PbftTransportOptions, 'maxQueue' | 'maxSize' | 'timeout' | 'dial'> {
  node: PbftHost
  /** Sessions open at once; {@link PbftMux.open} past it throws `PbftBusyError`. Default 8. */
  maxSessions?: number
  /**
   * Told of inbound input no session takes (typed: `PbftVoteError` `non-member` for a stream
   * from outside every committee, `wrong-job` for a frame of a job no session holds; wire errors).
   * Must not throw (it is caught).
   */
  onRejected?: (error: Error) => void
}

export interface PbftSessionOptions
  extends Pick<PbftTransportOptions, 'committee' | 'onMessage' | 'onRejected'> {
  /**
   * The job ids (`vote.jobId`) this session takes. Omitted: every frame from a member of its
   * committee (one session alone on the endpoint).
   */
  jobIds?: readonly Uint8Array[]
}

export interface PbftMux {
  /**
   * Opens a session: a transport for one job's rounds.
   * @throws {PbftBusyError} when `maxSessions` are open, or a job id is another session's.
   */
  open(options: PbftSessionOptions): PbftTransport
  /** Sessions open now. */
  readonly sessions: number
  /** Inbound input no session took (non-members, unknown jobs, frames that did not read). */
  readonly stats: PbftTransportStats
  /** Unregisters the protocol and ends every stream. */
  stop(): Promise<void>
}

interface Session {
  readonly committee: PbftCommittee
  readonly byPeer: ReadonlyMap<string, PbftMember>
  readonly ids: ReadonlySet<string> | undefined
  readonly options: PbftSessionOptions
  readonly stats: PbftTransportStats
}

interface Outbound {
  readonly body: Uint8Array
  readonly stats: PbftTransportStats
}

/** `code` or `code:reason` of a refusal, as `stats.refused` counts it. */
function refusalKey(err: unknown): string {
  const e = err as { code?: unknown; details?: { reason?: unknown } }
  if (typeof e?.code !== 'string') return 'error'
  return typeof e.details?.reason === 'string' ? `${e.code}:${e.details.reason}` : e.code
}

export function emptyStats(): PbftTransportStats {
  return { received: 0, nonMember: 0, rejected: 0, sent: 0, dropped: 0, refused: {} }
}

function refuseInto(
  stats: PbftTransportStats,
  err: unknown,
  observer: ((error: Error) => void) | undefined,
): void {
  const key = refusalKey(err)
  stats.refused[key] = (stats.refused[key] ?? 0) + 1
  try {
    observer?.(err instanceof Error ? err : new Error(String(err)))
  } catch {
    // An observer must not break the handler.
  }
}

/** Registers `/digicap/pbft/1.0.0` on `options.node` and returns the endpoint. */
export async function createPbftMux(options: PbftMuxOptions): Promise<PbftMux> {
  const { node } = options
  const maxQueue = options.maxQueue ?? 64
  const maxSize = options.maxSize ?? PBFT_MAX_FRAME
  const timeout = options.timeout ?? 5000
  const maxSessions = options.maxSessions ?? PBFT_MAX_SESSIONS
  const self = node.peerId.toString()
  const sessions = new Set<Session>()
  const stats = emptyStats()
  const queues = new Map<string, Outbound[]>()
  const busy = new Set<string>()
  const outbound = new Map<string, Stream>()
  const inbound = new Set<Stream>()
  const stopping = new AbortController()
  /** Each frame being written, aborted by its timer or by `stop()`. */
  const writing = new Set<AbortController>()

  const memberOfAny = (peer: string): PbftMember | undefined => {
    for (const s of sessions) {
      const m = s.byPeer.get(peer)
      if (m !== undefined) return m
    }
    return undefined
  }
  const sessionOf = (jobId: Uint8Array): Session | undefined => {
    const id = toHex(jobId)
    for (const s of sessions) if (s.ids === undefined || s.ids.has(id)) return s
    return undefined
  }

  async function onFrame(peer: string, body: Uint8Array): Promise<void> {
    let message: PbftMessage
    try {
      message = decodePbftMessage(body)
    } catch (err) {
      // A bad frame of a member: counted by every session that has the peer.
      const owners = [...sessions].filter((s) => s.byPeer.has(peer))
      for (const s of owners) {
        s.stats.rejected++
        refuseInto(s.stats, err, (e) => s.options.onRejected?.(e, s.byPeer.get(peer)))
      }
      if (owners.length === 0) refuseInto(stats, err, options.onRejected)
      return
    }
    const session = sessionOf(message.vote.jobId)
    if (session === undefined) {
      stats.rejected++
      refuseInto(
        stats,
        new PbftVoteError('wrong-job', 'A vote for a job this node has no round of', {
          details: { jobId: toHex(message.vote.jobId), peer },
        }),
        options.onRejected,
      )
      return
    }
    const from = session.byPeer.get(peer)
    if (from === undefined) {
      session.stats.rejected++
      refuseInto(
        session.stats,
        new PbftVoteError('non-member', 'A vote from a peer outside this job’s committee', {
          details: { peer },
        }),
        (e) => session.options.onRejected?.(e, undefined),
      )
      return
    }
    session.stats.received++
    try {
      await session.options.onMessage(from, message)
    } catch (err) {
      session.stats.rejected++
      refuseInto(session.stats, err, (e) => session.options.onRejected?.(e, from))
    }
  }

  await node.handle(
    PBFT_PROTOCOL,
    async (stream: Stream, connection: Connection) => {
      const peer = connection.remotePeer.toString()
      if (stopping.signal.aborted || memberOfAny(peer) === undefined) {
        // Not a member of any open committee: no read, no decode, no signature check.
        stream.abort(new Error('not a committee member'))
        const error = new PbftVoteError(
          'non-member',
          'A stream from a peer outside the committee',
          {
            details: { peer },
          },
        )
        stats.nonMember++
        refuseInto(stats, error, options.onRejected)
        for (const s of sessions) {
          s.stats.nonMember++
          refuseInto(s.stats, error, (e) => s.options.onRejected?.(e, undefined))
        }
        return
      }
      inbound.add(stream)
      try {
        // Frames of one peer are handled in order, one at a time.
        for await (const body of readMessages(stream, {
          maxSize,
          frameTimeout: timeout,
          signal: stopping.signal,
        })) {
          await onFrame(peer, body)
        }
        await stream.close().catch(() => {})
      } catch (err) {
        // The framing broke (too large, truncated, stalled, reset): this stream is done.
        if (stream.status === 'open') stream.abort(new Error('rejected'))
        if (stopping.signal.aborted) return
        const owners = [...sessions].filter((s) => s.byPeer.has(peer))
        for (const s of owners) {
          s.stats.rejected++
          refuseInto(s.stats, err, (e) => s.options.onRejected?.(e, s.byPeer.get(peer)))
        }
        if (owners.length === 0) refuseInto(stats, err, options.onRejected)
      } finally {
        inbound.delete(stream)
      }
    },
    // One long-lived stream per peer; a few more while a failed one is replaced.
    { maxInboundStreams: 16 },
  )

  async function open(member: PbftMember, signal: AbortSignal): Promise<Stream | undefined> {
    const kept = outbound.get(member.peerId)
    if (kept !== undefined && kept.status === 'open' && kept.writeStatus === 'writable') {
      return kept
    }
    outbound.delete(member.peerId)
    const connection = node
      .getConnections()
      .find((c) => c.remotePeer.toString() === member.peerId && c.status === 'open')
    let stream: Stream | undefined
    // Optimistic protocol select: the protocol id travels with the first frame.
    if (connection !== undefined) {
      stream = await connection.newStream(PBFT_PROTOCOL, { signal, negotiateFully: false })
    } else if (options.dial !== undefined) {
      stream = await options.dial(member, signal)
    }
    if (stream !== undefined) outbound.set(member.peerId, stream)
    return stream
  }

  async function deliver(member: PbftMember, body: Uint8Array): Promise<boolean> {
    // A kept stream may have died since its last frame (reset, idle timeout): one fresh try.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (stopping.signal.aborted) return false
      // A plain timer per frame, cleared once it is written: a composed timeout signal per frame
      // was a timer and garbage that outlived the frame by `timeout` ms (ADR 0053).
      const frame = new AbortController()
      const { signal } = frame
      const timer = setTimeout(
        () => frame.abort(new DOMException('The frame took too long', 'TimeoutError')),
        timeout,
      )
      writing.add(frame)
      let stream: Stream | undefined
      try {
        stream = await open(member, signal)
        if (stream === undefined) return false
        await sendMessage(stream, body, { maxSize, signal })
        return true
      } catch {
        if (stream !== undefined) {
          if (stream.status === 'open') stream.abort(new Error('send failed'))
          if (outbound.get(member.peerId) === stream) outbound.delete(member.peerId)
        }
        if (stopping.signal.aborted) return false
      } finally {
        clearTimeout(timer)
        writing.delete(frame)
      }
    }
    return false
  }

  async function drain(member: PbftMember): Promise<void> {
    const queue = queues.get(member.peerId) as Outbound[]
    busy.add(member.peerId)
    try {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        if (stopping.signal.aborted) return
        if (await deliver(member, item.body)) item.stats.sent++
        else item.stats.dropped++
      }
    } finally {
      busy.delete(member.peerId)
    }
  }

  function enqueue(member: PbftMember, item: Outbound): void {
    let queue = queues.get(member.peerId)
    if (queue === undefined) {
      queue = []
      queues.set(member.peerId, queue)
    }
    queue.push(item)
    if (queue.length > maxQueue) (queue.shift() as Outbound).stats.dropped++
    if (!busy.has(member.peerId)) void drain(member)
  }

  return {
    get sessions() {
      return sessions.size
    },
    stats,
    open(o) {
      if (stopping.signal.aborted || sessions.size >= maxSessions) {
        throw new PbftBusyError('This node runs as many PBFT rounds as it may', {
          details: { open: sessions.size, maxSessions },
          hint: 'Wait for a round to end, or raise maxSessions.',
        })
      }
      const ids = o.jobIds === undefined ? undefined : new Set(o.jobIds.map((id) => toHex(id)))
      for (const s of sessions) {
        const clash =
          s.ids === undefined || ids === undefined || [...ids].some((id) => s.ids?.has(id))
        if (clash) {
          throw new PbftBusyError('Another round on this node holds one of these job ids', {
            details: { open: sessions.size },
            hint: 'Open one session per job; a session without jobIds must be alone.',
          })
        }
      }
      const session: Session = {
        committee: o.committee,
        byPeer: new Map(o.committee.members.map((m) => [m.peerId, m])),
        ids,
        options: o,
        stats: emptyStats(),
      }
      sessions.add(session)
      let closed = false
      return {
        stats: session.stats,
        send(to, message) {
          if (closed || stopping.signal.aborted) return
          const body = encodePbftMessage(message)
          for (const member of to === undefined ? o.committee.members : [to]) {
            if (member.peerId !== self) enqueue(member, { body, stats: session.stats })
          }
        },
        async stop() {
          closed = true
          sessions.delete(session)
        },
      }
    },
    async stop() {
      if (stopping.signal.aborted) return
      stopping.abort()
      for (const frame of writing) frame.abort(stopping.signal.reason)
      sessions.clear()
      await node.unhandle(PBFT_PROTOCOL)
      for (const s of [...outbound.values(), ...inbound]) {
        if (s.status === 'open') s.abort(new Error('PBFT endpoint stopped'))
      }
      outbound.clear()
    },
  }
}
