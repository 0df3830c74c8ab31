/**
 * Bitswap messages sent without copying the blocks (ADR 0050), on one stream per peer (ADRs 0060
 * and 0061). `@helia/bitswap` 4's network encodes a message with blocks twice (`splitMessage`
 * measures each block by encoding it, then encodes the message), then hands it to a stream of
 * its own: the serving side of a 100 MiB fetch allocated and copied 200 MiB besides the stream's
 * own encryption. A message is sent here encoded by `encode.ts` around the blocks' own bytes (in
 * parts of at most the network's message size; the same progress events and counters), on the
 * peer's stream. Since ADR 0061 that is every message, wants and cancels too: a fetching node
 * opened a stream for each of its want-list messages, 53 per 100 MiB fetch (a window's wants,
 * then its cancels as the blocks came), each a protocol negotiation, a peer-record update on the
 * serving node and eight yamux frames. Installed on the node's own bitswap instance, as ADRs
 * 0041 and 0044 do; the shapes read here are checked at start.
 *
 * A kept stream carries many messages, and `send` returns once they are buffered: a stream that
 * ends abnormally (reset or aborted by either side, a failed close) loses every message not yet
 * delivered, wants and blocks alike. That is reported (`onStreamLost`, ADR 0062) so the node
 * sends again what it may have lost at once, not after the 10 s want resend (ADR 0041).
 */
import type { Helia } from '@helia/interface'
import type { PeerId } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { bitswapBroker } from '../have-first/bitswap-parts.ts'
import { type EncodableMessage, encodeMessages } from './encode.ts'

/** The bitswap protocol the network sends on. */
const BITSWAP_120 = '/ipfs/bitswap/1.2.0'

interface SendOptions {
  signal?: AbortSignal
  onProgress?: (event: Event) => void
}

interface SendStream {
  status: string
  writeStatus: string
  send(data: Uint8Array | Uint8ArrayList): boolean
  onDrain(options?: SendOptions): Promise<void>
  closeRead(options?: SendOptions): Promise<void>
  close(options?: SendOptions): Promise<void>
  abort(err: Error): void
  addEventListener(type: 'close', listener: (event: Event) => void, options?: object): void
}

/** The parts of bitswap's `Network` used here. */
interface SendingNetwork {
  sendMessage(peer: PeerId, message: EncodableMessage, options?: SendOptions): Promise<void>
  libp2p: {
    dialProtocol(peer: PeerId, protocol: string, options: object): Promise<SendStream>
    getConnections(peer?: PeerId): { status: string }[]
  }
  maxOutgoingMessageSize: number
  messageSendTimeout: number
  runOnLimitedConnections: boolean
  _updateSentStats(blocks: Map<string, { data: Uint8Array }>): void
}

export interface BlockSendInit {
  /**
   * Hears of a peer whose kept stream ended abnormally while the peer is still connected: the
   * messages this node sent on it may be lost. Called at most once per peer per
   * {@link LOST_STREAM_SPACING_MS} (a second loss within it is reported when it is up).
   */
  onStreamLost?: (peer: PeerId) => void
}

export interface BlockSend {
  /** Gives the network its own `sendMessage` back. */
  stop(): void
}

function networkOf(helia: Helia): SendingNetwork {
  const network = bitswapBroker(helia).bitswap.network as unknown as Partial<SendingNetwork>
  if (
    typeof network.sendMessage !== 'function' ||
    typeof network.libp2p?.dialProtocol !== 'function' ||
    typeof network.libp2p.getConnections !== 'function' ||
    typeof network.maxOutgoingMessageSize !== 'number' ||
    typeof network.messageSendTimeout !== 'number' ||
    typeof network._updateSentStats !== 'function'
  ) {
    throw new Error('@helia/bitswap internals are not the ones block-send.ts drives')
  }
  return network as SendingNetwork
}

/**
 * How long a peer's stream stays open with nothing to send: well under the receiver's timeout
 * for a stream with no message (bitswap's `messageReceiveTimeout`, 10 s), long enough to carry
 * the next window's blocks (or wants).
 */
export const BLOCK_STREAM_IDLE_MS = 1_000

/**
 * A peer's lost streams are reported at most this often: a peer that resets every stream (a
 * receiver refusing our messages) must not make the repair resend in a loop at network speed.
 */
export const LOST_STREAM_SPACING_MS = 1_000

/** Whether a stream's `close` event says it ended abnormally (reset, aborted, failed close). */
function endedAbnormally(event: Event): boolean {
  return (event as Event & { error?: Error }).error != null
}

/** A peer's stream (opened when a message needs it), the message being written, its idle timer. */
interface BlockStream {
  stream?: SendStream | undefined
  /** The last message handed to this stream: the next one is written after it. */
  turn: Promise<void>
  idle?: NodeJS.Timeout
}

/** Whether `stream` can carry another message (not closed, reset or aborted by either side). */
function writable(stream: SendStream | undefined): stream is SendStream {
  return stream?.status === 'open' && stream.writeStatus === 'writable'
}

/**
 * Sends every message of the node's bitswap without copying the blocks, on one stream per peer
 * kept open while messages keep coming (ADRs 0060, 0061): a stream per message cost a stream's
 * set-up and teardown per block (protocol negotiation, the remote's peer-record update, loggers,
 * six or more yamux frames each a noise message and a socket write) and started every block at
 * yamux's 256 KiB window. The receiver (bitswap's handler, ours or any other) reads
 * length-prefixed messages until the stream ends.
 */
export function installBlockSend(helia: Helia, init: BlockSendInit = {}): BlockSend {
  const network = networkOf(helia)
  const lost = lostStreamReports(network, init.onStreamLost)
  const ownSend = network.sendMessage
  const streams = new Map<string, BlockStream>()
  // a timer per message only when the stream is full (the peer reads slower than this node sends)
  const drained = (stream: SendStream, options?: SendOptions) =>
    stream.onDrain({ signal: options?.signal ?? AbortSignal.timeout(network.messageSendTimeout) })
  // a message is one `send`: each `send` was a yamux frame of its own (the length prefix and the
  // block's framing each a frame of a few bytes, each a noise message, each answered by a window
  // update from the receiver: 2 of every 6 frames a block took, ADR 0061)
  const send = async (stream: SendStream, message: EncodableMessage, options?: SendOptions) => {
    for (const { parts } of encodeMessages(message, network.maxOutgoingMessageSize)) {
      if (!stream.send(new Uint8ArrayList(...parts))) await drained(stream, options)
    }
  }
  const closeWhenIdle = (key: string, entry: BlockStream, stream: SendStream) => {
    entry.idle = setTimeout(() => {
      if (streams.get(key) === entry) streams.delete(key)
      entry.stream = undefined
      stream.close().catch((err: Error) => stream.abort(err))
    }, BLOCK_STREAM_IDLE_MS)
    entry.idle.unref?.()
  }
  const open = async (peer: PeerId, options?: SendOptions): Promise<SendStream> => {
    const signal = options?.signal ?? AbortSignal.timeout(network.messageSendTimeout)
    const stream = await network.libp2p.dialProtocol(peer, BITSWAP_120, {
      signal,
      runOnLimitedConnection: network.runOnLimitedConnections,
    })
    // every message on it since it opened may be undelivered if it ends abnormally
    stream.addEventListener('close', (event) => {
      if (endedAbnormally(event)) lost.report(peer)
    })
    await stream.closeRead({ signal })
    return stream
  }
  /** Writes `message` on the peer's stream (opened if it has none that can carry it). */
  const sendOnStream = async (
    peer: PeerId,
    entry: BlockStream,
    key: string,
    message: EncodableMessage,
    options?: SendOptions,
  ) => {
    clearTimeout(entry.idle)
    options?.onProgress?.(new CustomEvent('bitswap:send-wantlist', { detail: peer }))
    // a stream that cannot be opened fails the message, as the network's own send does
    if (!writable(entry.stream)) entry.stream = await open(peer, options)
    const stream = entry.stream
    try {
      await send(stream, message, options)
      closeWhenIdle(key, entry, stream)
    } catch (err) {
      // as the network's own send: reported, the stream dropped, the message not retried
      options?.onProgress?.(
        new CustomEvent('bitswap:send-wantlist:error', { detail: { peer, error: err } }),
      )
      entry.stream = undefined
      stream.abort(err as Error)
    }
    network._updateSentStats(message.blocks)
  }
  network.sendMessage = (peer, message, options) => {
    // not through the network's send queue: its jobs serialise nothing per peer, and each job
    // made an error (a stack trace) when it ended; here a peer's messages go one after the other
    // (the network merged a message into one still queued for the peer: the have-first outbox
    // sends one message per peer every 10 ms at most, and the want-list its own debounced ones)
    const key = peer.toString()
    let entry = streams.get(key)
    if (entry === undefined) {
      entry = { turn: Promise.resolve() }
      streams.set(key, entry)
    }
    const own = entry
    const sent = own.turn.then(() => sendOnStream(peer, own, key, message, options))
    own.turn = sent.catch(() => {})
    return sent
  }
  return {
    stop() {
      lost.stop()
      network.sendMessage = ownSend
      for (const entry of streams.values()) {
        clearTimeout(entry.idle)
        entry.stream?.abort(new Error('block send stopped'))
      }
      streams.clear()
    },
  }
}

/** Reports of lost streams, per peer, spaced and only for peers still connected. */
function lostStreamReports(network: SendingNetwork, onStreamLost?: (peer: PeerId) => void) {
  const lastReport = new Map<string, number>()
  const due = new Map<string, NodeJS.Timeout>()
  let stopped = false
  const connected = (peer: PeerId) =>
    network.libp2p.getConnections(peer).some((c) => c.status === 'open')
  return {
    report(peer: PeerId) {
      const key = peer.toString()
      if (stopped || onStreamLost === undefined || due.has(key)) return
      const now = Date.now()
      for (const [k, at] of lastReport) if (now - at >= LOST_STREAM_SPACING_MS) lastReport.delete(k)
      const wait = (lastReport.get(key) ?? -Infinity) + LOST_STREAM_SPACING_MS - now
      // a macrotask later at least: a connection that is closing aborts its streams before its
      // own status changes, and a peer that went away is the disconnect's, not a resend's
      const timer = setTimeout(
        () => {
          due.delete(key)
          if (stopped || !connected(peer)) return
          lastReport.set(key, Date.now())
          onStreamLost(peer)
        },
        Math.max(0, wait),
      )
      timer.unref?.()
      due.set(key, timer)
    },
    stop() {
      stopped = true
      for (const timer of due.values()) clearTimeout(timer)
      due.clear()
    },
  }
}
