/**
 * Length-prefixed messages over a js-libp2p 3 stream (no sink/source: `send`, `onDrain`, and
 * `byteStream` from `@libp2p/utils` for reading).
 */
import { DigicapError } from '@digicap/capsule-core'
import type { AbortOptions, MessageStream } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import {
  WireAbortedError,
  WireStreamError,
  WireTimeoutError,
  WireTooLargeError,
  WireTruncatedError,
} from './errors.ts'
import {
  checkMaxSize,
  encodeFrame,
  LengthPrefixParser,
  MAX_CONTROL_FRAME,
  varintLength,
} from './frame.ts'

/** Options of {@link readMessage}. */
export interface ReadMessageOptions extends AbortOptions {
  /** Largest body accepted, in bytes. Default 64 KiB. */
  maxSize?: number
}

/** Options of {@link sendMessage}. */
export interface SendMessageOptions extends AbortOptions {
  /** Largest body allowed, in bytes (checked before sending). Default 64 KiB. */
  maxSize?: number
}

/**
 * Converts whatever a libp2p stream operation threw into a typed wire error.
 * A `DigicapError` passes through unchanged.
 */
export function toWireError(err: unknown, signal?: AbortSignal): DigicapError {
  if (err instanceof DigicapError) return err
  if (signal?.aborted === true) {
    const reason: unknown = signal.reason
    if (reason instanceof Error && reason.name === 'TimeoutError') {
      return new WireTimeoutError('The exchange timed out', { cause: err })
    }
    return new WireAbortedError('The exchange was aborted', { cause: err })
  }
  const name = err instanceof Error ? err.name : ''
  if (name === 'UnexpectedEOFError') {
    return new WireTruncatedError('The stream ended before a whole message arrived', {
      cause: err,
    })
  }
  if (name === 'StreamBufferError') {
    return new WireTooLargeError('The peer sent more than the maximum frame size', {
      cause: err,
    })
  }
  return new WireStreamError('The stream failed', {
    details: { reason: name || typeof err },
    cause: err,
  })
}

/**
 * Writes one length-prefixed message, waiting for the stream to drain if its buffer is full.
 *
 * @throws {WireTooLargeError} if `body` is longer than `maxSize` (nothing is sent).
 * @throws {WireStreamError} if the stream is closed or reset.
 * @throws {WireAbortedError | WireTimeoutError} if `signal` fires while waiting to drain.
 * @example
 * ```ts
 * await sendMessage(stream, encodeReleaseAck({ grantId, status: 'ok' }))
 * ```
 */
export async function sendMessage(
  stream: MessageStream,
  body: Uint8Array,
  options: SendMessageOptions = {},
): Promise<void> {
  const frame = encodeFrame(body, checkMaxSize(options.maxSize ?? MAX_CONTROL_FRAME))
  try {
    options.signal?.throwIfAborted()
    if (!stream.send(frame)) await whenDrained(stream, options.signal)
  } catch (err) {
    throw toWireError(err, options.signal)
  }
}

/**
 * Resolves at the stream's next `drain` (at once if it needs none); rejects when it closes or
 * `signal` aborts. Not `stream.onDrain()`: `@libp2p/utils` 7.4 keeps the promise of a stream's
 * first drain and hands it, settled, to every later call, so after one drain a writer never
 * waited again and a peer that stopped reading had every later message buffered for it.
 */
function whenDrained(stream: MessageStream, signal?: AbortSignal): Promise<void> {
  if (stream.writableNeedsDrain !== true) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = () => {
      done()
      resolve()
    }
    const onClose = (event: Event) => {
      done()
      reject((event as Event & { error?: Error }).error ?? new Error('stream closed'))
    }
    const onAbort = () => {
      done()
      reject(signal?.reason)
    }
    if (signal?.aborted === true) return onAbort()
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

/**
 * Reads one length-prefixed message and returns its body. The length is checked against
 * `maxSize` before any body byte is awaited; bytes after the frame stay in the stream.
 *
 * @throws {WireTooLargeError} if the frame (or the data the peer pushed) exceeds `maxSize`.
 * @throws {WireFormatError} for a non-minimal length varint.
 * @throws {WireTruncatedError} if the stream ends before the whole frame.
 * @throws {WireStreamError} if the stream is reset.
 * @throws {WireAbortedError | WireTimeoutError} if `signal` fires.
 * @example
 * ```ts
 * const req = decodeAccessRequest(await readMessage(stream, { maxSize: 65536, signal }))
 * ```
 */
export async function readMessage(
  stream: MessageStream,
  options: ReadMessageOptions = {},
): Promise<Uint8Array> {
  const maxSize = checkMaxSize(options.maxSize ?? MAX_CONTROL_FRAME)
  const signal = options.signal
  // Buffer at most one whole frame (plus a little): a peer that pushes more is cut off.
  const bytes = byteStream(stream, { maxBufferSize: maxSize + varintLength(maxSize) + 64 })
  const readOptions = signal === undefined ? {} : { signal }
  try {
    signal?.throwIfAborted()
    const parser = new LengthPrefixParser(maxSize)
    let length: number | undefined
    while (length === undefined) {
      const chunk = await bytes.read({ ...readOptions, bytes: 1 })
      length = parser.push(chunk.get(0))
    }
    if (length === 0) return new Uint8Array(0)
    const body = await bytes.read({ ...readOptions, bytes: length })
    return body.subarray()
  } catch (err) {
    throw toWireError(err, signal)
  } finally {
    try {
      // Hands any bytes read past the frame back to the stream.
      bytes.unwrap()
    } catch {
      // The stream is already gone; nothing to hand back.
    }
  }
}

/** Options of {@link readMessages}. */
export interface ReadMessagesOptions extends ReadMessageOptions {
  /**
   * Time the rest of a frame may take once its first byte arrived, ms (a peer that starts a
   * frame and stalls is cut off). The wait for a frame's first byte has no limit but `signal`.
   * Default 5000.
   */
  frameTimeout?: number
}

/**
 * Unread bytes a kept stream may hold past one frame (`readMessages`): 4 MiB, what libp2p itself
 * buffers for a paused stream before it resets it. The stream is paused once more than a frame
 * waits unread, so a sender that respects back-pressure has at most its mux window in flight; a
 * bound of one frame cut such a sender off with every frame it had queued (ADR 0088).
 */
export const KEPT_STREAM_BUFFER = 4 * 1024 * 1024

/**
 * Reads length-prefixed messages from one long-lived stream until the remote closes it at a
 * frame boundary (a clean end). Each body is checked against `maxSize` before it is awaited.
 * While more than one frame's bytes wait unread (the consumer is slower than the sender), the
 * stream is paused: the muxer stops granting the sender window, and reading resumes it once the
 * backlog is under a frame again. Past one frame plus {@link KEPT_STREAM_BUFFER} unread bytes
 * (a sender that ignores its window) the stream is cut off.
 *
 * @throws {WireTooLargeError | WireFormatError} for a bad frame length (the stream cannot be
 * read further).
 * @throws {WireTruncatedError} if the stream ends inside a frame.
 * @throws {WireTimeoutError} if a started frame does not complete within `frameTimeout`.
 * @throws {WireStreamError | WireAbortedError} if the stream is reset or `signal` fires.
 * @example
 * ```ts
 * for await (const body of readMessages(stream, { maxSize: 65536 })) handle(decode(body))
 * ```
 */
export async function* readMessages(
  stream: MessageStream,
  options: ReadMessagesOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const maxSize = checkMaxSize(options.maxSize ?? MAX_CONTROL_FRAME)
  const frameTimeout = options.frameTimeout ?? 5000
  // Each frame is capped at `maxSize` by its length; the unread bytes at a frame and a buffer.
  const frame = maxSize + varintLength(maxSize) + 64
  const bytes = byteStream(stream, { maxBufferSize: frame + KEPT_STREAM_BUFFER })
  /** Bytes arrived and not read yet; `held` while this reader paused the stream for them. */
  let unread = 0
  let held = false
  const onMessage = (event: Event) => {
    unread += (event as Event & { data: { byteLength: number } }).data.byteLength
    if (!held && unread > frame) held = pause(stream)
  }
  stream.addEventListener('message', onMessage)
  const read = async (n: number, o: AbortOptions) => {
    const chunk = await bytes.read({ ...o, bytes: n })
    unread -= chunk.byteLength
    if (held && unread <= frame) {
      held = false
      resume(stream)
    }
    return chunk
  }
  const idle = options.signal === undefined ? {} : { signal: options.signal }
  // One frame-timeout signal for the whole stream, armed by a plain timer while a frame is being
  // read: a kept stream carries many small frames, and a timeout signal (plus a composed one)
  // per frame was a timer and garbage that lived for `frameTimeout` after each frame.
  const late = new AbortController()
  const signal =
    options.signal === undefined ? late.signal : AbortSignal.any([options.signal, late.signal])
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    for (;;) {
      let first: number
      try {
        first = (await read(1, idle)).get(0)
      } catch (err) {
        // The remote closed between two frames: the clean end of the stream.
        if (err instanceof Error && err.name === 'UnexpectedEOFError') return
        throw toWireError(err, options.signal)
      }
      timer = setTimeout(
        () => late.abort(new DOMException('The frame took too long', 'TimeoutError')),
        frameTimeout,
      )
      let body: Uint8Array
      try {
        const parser = new LengthPrefixParser(maxSize)
        let length = parser.push(first)
        while (length === undefined) {
          length = parser.push((await read(1, { signal })).get(0))
        }
        body = length === 0 ? new Uint8Array(0) : (await read(length, { signal })).subarray()
      } catch (err) {
        throw toWireError(err, signal)
      } finally {
        clearTimeout(timer)
      }
      yield body
    }
  } finally {
    clearTimeout(timer)
    stream.removeEventListener('message', onMessage)
    if (held) resume(stream)
    try {
      bytes.unwrap()
    } catch {
      // The stream is already gone.
    }
  }
}

/** A stream's read side, where it says (a `Stream` does; a bare `MessageStream` may not). */
function readStatus(stream: MessageStream): string | undefined {
  return (stream as { readStatus?: string }).readStatus
}

/** Pauses a readable stream; false when it was not readable (closing, closed, paused by another). */
function pause(stream: MessageStream): boolean {
  if ((readStatus(stream) ?? 'readable') !== 'readable' || stream.status !== 'open') return false
  try {
    stream.pause()
    return true
  } catch {
    return false // closed meanwhile
  }
}

/** Resumes a stream this reader paused. */
function resume(stream: MessageStream): void {
  if ((readStatus(stream) ?? 'paused') !== 'paused' || stream.status !== 'open') return
  try {
    stream.resume()
  } catch {
    // Closed meanwhile.
  }
}
