/**
 * The responding side of a Digicap protocol: a libp2p stream handler that reads one request
 * frame, decodes it strictly, calls a typed handler, and writes one response frame. Bad input
 * gets an `error` reply (or an abort), never an exception in the node.
 */
import { type DigicapError, InvalidArgumentError } from '@digicap/capsule-core'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { ConnectionGuard } from './connection-guard.ts'
import {
  HandlerFailedError,
  type RemoteErrorCode,
  WireAbortedError,
  WireStreamError,
  WireTimeoutError,
} from './errors.ts'
import { checkMaxSize } from './frame.ts'
import { encodeErrorReply, MAX_TEXT_BYTES } from './messages.ts'
import type { WireProtocol } from './protocols.ts'
import { DEFAULT_TIMEOUT_MS } from './request.ts'
import { readMessage, sendMessage, toWireError } from './stream.ts'
import type { StreamGate, StreamTicket } from './stream-gate.ts'

/** What a handler learns about the exchange besides the request. */
export interface HandlerContext {
  /** The remote peer (authenticated by the connection's noise handshake). */
  peer: PeerId
  connection: Connection
  /** Fires when the exchange's time limit passes; pass it to slow work (RPC calls). */
  signal: AbortSignal
}

/** A typed request handler. Throwing makes the responder send an `internal` error reply. */
export type RequestHandler<Req, Res> = (request: Req, context: HandlerContext) => Res | Promise<Res>

/** Options of {@link handle}. */
export interface HandleOptions {
  /** Concurrent inbound streams per connection (libp2p option). Default 32. */
  maxInboundStreams?: number
  /** Concurrent outbound streams per connection (libp2p option). */
  maxOutboundStreams?: number
  /** Largest request or response body, bytes. Default: the protocol's `maxSize`. */
  maxSize?: number
  /** Time limit of one exchange, ms; the stream is aborted when it passes. Default 10 000. */
  timeout?: number
  /**
   * Time limit for the request frame to arrive, ms (a read deadline shorter than `timeout`, so a
   * peer that sends half a frame and holds it pins its buffer only this long). Default `timeout`.
   */
  readTimeout?: number
  /**
   * Request frames being read at once from one peer (over all its connections); a stream beyond
   * it is aborted before any byte is buffered. Default unlimited.
   */
  maxReadingPerPeer?: number
  /** Request frames being read at once from all peers; beyond it streams are aborted. Default unlimited. */
  maxReading?: number
  /**
   * Peers exempt from `maxReading` (still bound by `maxReadingPerPeer`) and from the
   * `readTimeout` deadline (their frame may take the exchange's `timeout`), e.g. the registered
   * executors: strangers filling the global cap cannot shut them out, and an event loop a flood
   * stalls past the read deadline does not drop their requests.
   */
  isTrustedPeer?: (peer: PeerId) => boolean
  /**
   * Admission of whole exchanges (per-peer and global limits on exchanges in progress; when
   * full, the oldest one still reading its request is evicted, so held half-frames cannot
   * starve an honest peer). A stream the gate turns away is reset before any byte is read.
   */
  gate?: StreamGate
  /**
   * Asked first, for each inbound stream, before any other check and before any byte is read:
   * a stream it cuts is dropped with its whole connection (strangers over their budget; see
   * {@link ConnectionGuard}).
   */
  guard?: Pick<ConnectionGuard, 'admitStream'>
  /** Told about every failed exchange (bad input, handler error, stream error). */
  onError?: (error: DigicapError, context: { peer: PeerId; protocol: string }) => void
}

/** What {@link handle} needs of a libp2p node. */
export type ProtocolRegistrar = Pick<Libp2p, 'handle' | 'unhandle'>

function remoteCode(err: DigicapError): RemoteErrorCode | undefined {
  switch (err.code) {
    case 'WIRE_FORMAT':
      return 'format'
    case 'WIRE_VERSION':
      return 'version'
    case 'WIRE_TOO_LARGE':
      return 'too-large'
    case 'WIRE_TRUNCATED':
      return 'truncated'
    case 'WIRE_STREAM':
    case 'WIRE_ABORTED':
    case 'WIRE_TIMEOUT':
      return undefined
    default:
      return 'internal'
  }
}

function replyText(err: DigicapError, code: RemoteErrorCode): string | undefined {
  if (code === 'internal') return undefined
  const field = err.details.field
  const text = typeof field === 'string' ? `${err.shortMessage} (field ${field})` : err.shortMessage
  return text.slice(0, MAX_TEXT_BYTES / 4)
}

/**
 * Registers `handler` for `protocol` on `node` and returns a function that unregisters it.
 *
 * Per stream: read one frame (≤ `maxSize`, within `timeout`), decode it, call `handler`,
 * send its response, close. Malformed, truncated, oversized or wrong-version input gets an
 * `error` reply with the matching code; a handler that throws gets `internal` (its message
 * is not sent); a reset or timed-out stream is aborted. The node keeps serving.
 *
 * @throws {InvalidArgumentError} for a bad `maxSize`; libp2p's error if the protocol is taken.
 * @example
 * ```ts
 * const stop = await handle(libp2p, keyReleaseProtocol, async (release, { peer }) => {
 *   const key = await hpkeOpen(ephemeral.privateKey, decodeHpkeSealed(release.hpke), release.grantId)
 *   return { grantId: release.grantId, status: 'ok' }
 * }, { timeout: 5000 })
 * ```
 */
export async function handle<Req, Res>(
  node: ProtocolRegistrar,
  protocol: WireProtocol<Req, Res>,
  handler: RequestHandler<NoInfer<Req>, NoInfer<Res>>,
  options: HandleOptions = {},
): Promise<() => Promise<void>> {
  const maxSize = checkMaxSize(options.maxSize ?? protocol.maxSize)
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new InvalidArgumentError('timeout must be a positive number of ms', {
      details: { timeout },
    })
  }

  const readTimeout = options.readTimeout ?? timeout
  const maxReadingPerPeer = options.maxReadingPerPeer ?? Number.POSITIVE_INFINITY
  const maxReading = options.maxReading ?? Number.POSITIVE_INFINITY
  for (const [name, value] of Object.entries({ readTimeout, maxReadingPerPeer, maxReading })) {
    if (!(value > 0)) {
      throw new InvalidArgumentError(`${name} must be positive`, { details: { [name]: value } })
    }
  }
  /** Streams whose request frame is still being read, per peer (bounded by `maxReading`). */
  const readingByPeer = new Map<string, number>()
  let reading = 0

  const serve = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer
    // The guard aborts the connection itself (with every stream on it).
    if (options.guard?.admitStream(connection) === 'cut') return
    let ticket: StreamTicket | undefined
    if (options.gate !== undefined) {
      ticket = options.gate.admit(peer.toString(), () => {
        if (stream.status === 'open') {
          stream.abort(
            new WireStreamError('Stream evicted to make room', { details: { reason: 'evicted' } }),
          )
        }
      })
      if (ticket === undefined) {
        const err = new WireAbortedError('Too many exchanges in progress', {
          details: { reason: 'gate-full' },
        })
        try {
          options.onError?.(err, { peer, protocol: protocol.id })
        } catch {
          // A failing observer must not take the handler down.
        }
        if (stream.status === 'open') stream.abort(err)
        return
      }
    }
    try {
      await exchange(stream, connection, ticket)
    } finally {
      ticket?.release()
    }
  }

  const exchange = async (
    stream: Stream,
    connection: Connection,
    ticket: StreamTicket | undefined,
  ): Promise<void> => {
    const peer = connection.remotePeer
    const report = (err: DigicapError): void => {
      try {
        options.onError?.(err, { peer, protocol: protocol.id })
      } catch {
        // A failing observer must not take the handler down.
      }
    }
    const signal = AbortSignal.timeout(timeout)
    const onTimeout = (): void => {
      stream.abort(new WireTimeoutError('The exchange timed out', { details: { timeout } }))
    }
    signal.addEventListener('abort', onTimeout, { once: true })
    stream.addEventListener('close', () => signal.removeEventListener('abort', onTimeout), {
      once: true,
    })

    const fail = async (err: DigicapError): Promise<void> => {
      report(err)
      const code = remoteCode(err)
      if (code === undefined || stream.writeStatus !== 'writable') {
        if (stream.status === 'open') stream.abort(err)
        return
      }
      try {
        const message = replyText(err, code)
        await sendMessage(
          stream,
          encodeErrorReply(message === undefined ? { code } : { code, message }),
          {
            signal,
            maxSize,
          },
        )
        await stream.close({ signal })
      } catch (replyErr) {
        if (stream.status === 'open' || stream.status === 'closing') {
          stream.abort(toWireError(replyErr, signal))
        }
      }
    }

    const peerKey = peer.toString()
    const peerReading = readingByPeer.get(peerKey) ?? 0
    const trusted = options.isTrustedPeer?.(peer) === true
    const overGlobal = reading >= maxReading && !trusted
    if (overGlobal || peerReading >= maxReadingPerPeer) {
      // Refused before any byte is buffered: a peer holding half-frames cannot pin more.
      const err = new WireAbortedError('Too many requests being read', {
        details: { reason: 'too-many-reading', peerReading, reading },
      })
      report(err)
      if (stream.status === 'open') stream.abort(err)
      return
    }
    reading++
    readingByPeer.set(peerKey, peerReading + 1)
    const readSignal =
      readTimeout < timeout && !trusted
        ? AbortSignal.any([signal, AbortSignal.timeout(readTimeout)])
        : signal
    let req: Req
    try {
      req = protocol.decodeRequest(await readMessage(stream, { signal: readSignal, maxSize }))
    } catch (err) {
      const wireError = toWireError(err, readSignal)
      if (readSignal.aborted && !signal.aborted) {
        // The read deadline passed: drop the half-read stream, nothing to answer.
        report(wireError)
        if (stream.status === 'open') stream.abort(wireError)
        return
      }
      await fail(wireError)
      return
    } finally {
      reading--
      const left = (readingByPeer.get(peerKey) ?? 1) - 1
      if (left > 0) readingByPeer.set(peerKey, left)
      else readingByPeer.delete(peerKey)
    }
    ticket?.read()
    let body: Uint8Array
    try {
      body = protocol.encodeResponse(await handler(req, { peer, connection, signal }))
    } catch (err) {
      await fail(
        new HandlerFailedError('The request handler failed', {
          details: { protocol: protocol.id },
          cause: err,
        }),
      )
      return
    }
    try {
      await sendMessage(stream, body, { signal, maxSize })
      await stream.close({ signal })
    } catch (err) {
      const wireError = toWireError(err, signal)
      report(wireError)
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(wireError)
    }
  }

  await node.handle(protocol.id, serve, {
    ...(options.maxInboundStreams === undefined
      ? {}
      : { maxInboundStreams: options.maxInboundStreams }),
    ...(options.maxOutboundStreams === undefined
      ? {}
      : { maxOutboundStreams: options.maxOutboundStreams }),
  })
  return () => node.unhandle(protocol.id)
}
