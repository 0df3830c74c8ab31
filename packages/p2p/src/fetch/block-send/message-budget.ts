/**
 * A bitswap message costs the receiving node ~40 µs whatever its size (decoded, dispatched to
 * both of bitswap's sides, a send job queued, a timer renewed), and a message can be one byte
 * (a zero length prefix). Bitswap's reader handles every message of a chunk it is given in one
 * run of microtasks: 256 KiB of zero bytes on one stream, from any peer, stopped the node's event
 * loop for 10 s (review; ADR 0090), key releases and fetches included.
 *
 * Here the frames a peer sends are counted as their bytes arrive, before bitswap reads them (the
 * length prefixes only: nothing is decoded), against a budget per connection: a token bucket of
 * {@link MESSAGE_BURST} messages refilled at {@link MESSAGE_RATE} a second, well above what a
 * fetch or a server sends (a message per want-list change, debounced 10 ms). Block messages
 * ({@link LARGE_MESSAGE_BYTES} and more) are not counted.
 * A connection over it is cut with {@link PeerFloodingError}, and the chunk that went over is
 * never handed to bitswap. The peer may dial again; each connection costs it a handshake.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { PeerFloodingError } from '../../errors.ts'

/** Messages a connection may send at once. */
export const MESSAGE_BURST = 1_024
/** Messages a connection may send a second, on average. */
export const MESSAGE_RATE = 512
/**
 * Messages this long or longer are not counted: a block message's cost is its bytes, which the
 * connection's bandwidth bounds, and a fetch on a fast link receives far more than
 * {@link MESSAGE_RATE} of them a second (1 MiB leaves at 1 GB/s: ~1 000).
 */
export const LARGE_MESSAGE_BYTES = 16 * 1024

interface Bucket {
  tokens: number
  at: number
}

/** Where a stream's length-prefixed frames stand between chunks. */
interface FrameCursor {
  /** Bytes of the current frame's body still to come. */
  remaining: number
  /** The length prefix read so far, and its next digit's weight. */
  length: number
  shift: number
}

/** How many small frames start in `chunk` (their prefixes end in it). */
function framesIn(cursor: FrameCursor, chunk: Uint8Array): number {
  let frames = 0
  let i = 0
  while (i < chunk.byteLength) {
    if (cursor.remaining > 0) {
      const skip = Math.min(cursor.remaining, chunk.byteLength - i)
      cursor.remaining -= skip
      i += skip
      continue
    }
    const byte = chunk[i++] as number
    cursor.length += (byte & 0x7f) * 2 ** cursor.shift
    cursor.shift += 7
    if (byte < 0x80) {
      if (cursor.length < LARGE_MESSAGE_BYTES) frames++
      cursor.remaining = cursor.length
      cursor.length = 0
      cursor.shift = 0
    }
  }
  return frames
}

export interface MessageBudget {
  /** Counts the messages of `stream` before bitswap's reader sees them (call before it reads). */
  watch(stream: Stream, connection: Connection): void
}

export interface MessageBudgetInit {
  burst?: number
  ratePerSecond?: number
}

export function createMessageBudget(init: MessageBudgetInit = {}): MessageBudget {
  const burst = init.burst ?? MESSAGE_BURST
  const rate = init.ratePerSecond ?? MESSAGE_RATE
  // one bucket per connection, gone with it
  const buckets = new WeakMap<Connection, Bucket>()
  const take = (connection: Connection, count: number): boolean => {
    const now = performance.now()
    const bucket = buckets.get(connection) ?? { tokens: burst, at: now }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate)
    bucket.at = now
    buckets.set(connection, bucket)
    if (bucket.tokens < count) return false
    bucket.tokens -= count
    return true
  }
  return {
    watch(stream, connection) {
      const cursor: FrameCursor = { remaining: 0, length: 0, shift: 0 }
      // bitswap's reader adds its `message` listener once, after the stream's first tick; a
      // listener of our own added now would take the bytes the stream buffers until then, so
      // the reader's own listener is wrapped as it is added
      const add = stream.addEventListener.bind(stream) as (
        type: string,
        listener: unknown,
        options?: unknown,
      ) => void
      ;(stream as { addEventListener: typeof add }).addEventListener = (
        type,
        listener,
        options,
      ) => {
        if (type !== 'message' || typeof listener !== 'function') {
          add(type, listener, options)
          return
        }
        add(
          type,
          (event: Event & { data: Uint8Array | Uint8ArrayList }) => {
            let frames = 0
            const { data } = event
            if (data instanceof Uint8Array) frames = framesIn(cursor, data)
            else for (const chunk of data) frames += framesIn(cursor, chunk)
            if (take(connection, frames)) {
              listener(event)
              return
            }
            connection.abort(
              new PeerFloodingError('The peer sent bitswap messages faster than any fetch does', {
                details: { peer: connection.remotePeer.toString(), burst, ratePerSecond: rate },
                hint: 'Its connection is closed; it may dial again.',
              }),
            )
          },
          options,
        )
      }
    },
  }
}
