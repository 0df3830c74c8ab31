/**
 * The requesting side of a Digicap protocol: open a stream, send one request frame, read
 * one response frame, close. Bounded by a timeout and the caller's `AbortSignal`.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import type { AbortOptions, Connection, Libp2p, Stream } from '@libp2p/interface'
import { decodeEnvelope } from './cbor.ts'
import { WireRemoteError, WireTooLargeError } from './errors.ts'
import { checkMaxSize } from './frame.ts'
import { decodeErrorReply } from './messages.ts'
import type { WireProtocol } from './protocols.ts'
import { readMessage, sendMessage, toWireError } from './stream.ts'

/** Default time limit of one exchange, dial included: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000

/** Options of {@link request} and {@link requestOn}. */
export interface RequestOptions extends AbortOptions {
  /** Time limit of the whole exchange (dial, send, receive), ms. Default 10 000. */
  timeout?: number
  /** Largest body sent or accepted, bytes. Default: the protocol's `maxSize`. */
  maxSize?: number
}

/** What {@link request} needs of a libp2p node. */
export type ProtocolDialer = Pick<Libp2p, 'dialProtocol'>
/** What {@link requestOn} needs of a connection. */
export type StreamOpener = Pick<Connection, 'newStream'>
/** Whom {@link request} dials: a peer id or multiaddr(s), as `libp2p.dialProtocol` takes. */
export type RequestTarget = Parameters<Libp2p['dialProtocol']>[0]

/**
 * Decodes a response body, turning an `error` reply into a {@link WireRemoteError}.
 *
 * @throws {WireRemoteError} if the body is an `error` reply.
 * @throws {WireFormatError | WireVersionError} for a malformed body.
 */
export function decodeReply<Res>(
  protocol: Pick<WireProtocol<unknown, Res>, 'decodeResponse'>,
  body: Uint8Array,
): Res {
  // An error reply is v 1 on every protocol; a response has its protocol's own version.
  const { type } = decodeEnvelope(body, 'any')
  if (type === 'error') {
    const reply = decodeErrorReply(body)
    throw new WireRemoteError(reply.code, reply.message)
  }
  return protocol.decodeResponse(body)
}

function checkTimeout(timeout: number): number {
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new InvalidArgumentError('timeout must be a positive number of ms', {
      details: { timeout },
    })
  }
  return timeout
}

async function exchange<Req, Res>(
  open: (options: AbortOptions) => Promise<Stream>,
  protocol: WireProtocol<Req, Res>,
  message: Req,
  options: RequestOptions,
): Promise<Res> {
  const maxSize = checkMaxSize(options.maxSize ?? protocol.maxSize)
  const body = protocol.encodeRequest(message)
  if (body.length > maxSize) {
    throw new WireTooLargeError('Request is larger than the maximum frame size', {
      details: { length: body.length, maxSize, protocol: protocol.id },
      hint: 'Raise maxSize on both ends, or send large payloads by CID.',
    })
  }
  const timeout = AbortSignal.timeout(checkTimeout(options.timeout ?? DEFAULT_TIMEOUT_MS))
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  let stream: Stream
  try {
    signal.throwIfAborted()
    stream = await open({ signal })
  } catch (err) {
    throw toWireError(err, signal)
  }
  try {
    await sendMessage(stream, body, { signal, maxSize })
    const reply = await readMessage(stream, { signal, maxSize })
    const response = decodeReply(protocol, reply)
    try {
      await stream.close({ signal })
    } catch (err) {
      // The answer is in; a failing close must not lose it.
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(toWireError(err))
    }
    return response
  } catch (err) {
    const wireError = toWireError(err, signal)
    if (stream.status === 'open' || stream.status === 'closing') stream.abort(wireError)
    throw wireError
  }
}

/**
 * Sends one request to `peer` on `protocol` and returns the decoded response.
 *
 * @throws {InvalidArgumentError} if `message` does not encode.
 * @throws {WireTooLargeError} if the request or response exceeds `maxSize`.
 * @throws {WireRemoteError} if the peer answered with an `error` reply.
 * @throws {WireFormatError | WireVersionError} if the response is malformed.
 * @throws {WireTimeoutError | WireAbortedError} on timeout or abort.
 * @throws {WireStreamError | WireTruncatedError} if the dial or the stream fails.
 * @example
 * ```ts
 * const ack = await request(libp2p, executorPeerId, keyReleaseProtocol, release, { timeout: 5000 })
 * if (ack.status !== 'ok') throw new Error(ack.status)
 * ```
 */
export function request<Req, Res>(
  node: ProtocolDialer,
  peer: RequestTarget,
  protocol: WireProtocol<Req, Res>,
  message: Req,
  options: RequestOptions = {},
): Promise<Res> {
  return exchange((o) => node.dialProtocol(peer, protocol.id, o), protocol, message, options)
}

/**
 * Like {@link request}, on an existing connection.
 *
 * @throws the same errors as {@link request}.
 */
export function requestOn<Req, Res>(
  connection: StreamOpener,
  protocol: WireProtocol<Req, Res>,
  message: Req,
  options: RequestOptions = {},
): Promise<Res> {
  return exchange((o) => connection.newStream(protocol.id, o), protocol, message, options)
}
