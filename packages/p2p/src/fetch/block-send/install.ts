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
 *
 * A message with blocks is done only once the peer's connection holds at most
 * {@link CONNECTION_BACKLOG_BYTES} unsent in this process (ADR 0066): a stream takes what its
 * yamux window allows, and a connection whose peer stopped reading kept all of it, for ever
 * (review: 38 such peers, 615 MiB). A peer that lets a send time out (no stream taken, no bytes
 * read, no backlog drained within bitswap's send timeout) has its connections closed: what they
 * hold would never be read.
 */
import type { Helia } from '@helia/interface'
import type { Connection, PeerId } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { PeerNotReadingError } from '../../errors.ts'
import { recycleServedBlock } from '../../filestore/served-read-buffers.ts'
import { bitswapBroker } from '../have-first/bitswap-parts.ts'
import { type EncodableMessage, encodeMessages } from './encode.ts'

/** The bitswap protocol the network sends on. */
const BITSWAP_120 = '/ipfs/bitswap/1.2.0'

interface SendOptions {
  signal?: AbortSignal
  onProgress?: (event: Event) => void
}

interface SendStream extends Drainable {
  status: string
  writeStatus: string
  /** What the stream holds unsent (`@libp2p/utils` 7's message streams). */
  writeBufferLength?: number
  send(data: Uint8Array | Uint8ArrayList): boolean
  closeRead(options?: SendOptions): Promise<void>
  close(options?: SendOptions): Promise<void>
  abort(err: Error): void
}

/** The parts of bitswap's `Network` used here. */
interface SendingNetwork {
  sendMessage(peer: PeerId, message: EncodableMessage, options?: SendOptions): Promise<void>
  libp2p: {
    dialProtocol(peer: PeerId, protocol: string, options: object): Promise<SendStream>
    getConnections(peer?: PeerId): Connection[]
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

/**
 * What a peer's connection may hold unsent in this process (written, not yet taken by the
 * kernel's socket buffer) before a message with blocks waits for it to drain: one block, so a
 * reading peer's pipe stays full. Whatever it holds must drain within the send timeout, or the
 * connection is closed (a peer could stop reading once the last block was written).
 */
export const CONNECTION_BACKLOG_BYTES = 1_048_576

/**
 * What a peer's connection must take within each send timeout while it holds bytes for it:
 * 64 KiB (6.4 KB/s at bitswap's 10 s). A peer reading slowly is never cut; one that reads a
 * trickle to keep its blocks (and its share of the serving budget) held is.
 */
export const MIN_PROGRESS_BYTES = 65_536

/**
 * A layer of a libp2p connection that buffers what its lower layer does not take yet
 * (`@libp2p/utils` 7's `AbstractMessageStream`): the encrypted stream the muxer writes to, and
 * under it the raw connection (`@libp2p/tcp`'s socket stream).
 */
interface BufferingLayer extends Drainable {
  writeBufferLength: number
  socket?: { writableLength?: number }
}

function bufferingLayer(value: unknown): BufferingLayer | undefined {
  const layer = value as Partial<BufferingLayer> | undefined
  return typeof layer?.writeBufferLength === 'number' &&
    typeof layer.addEventListener === 'function' &&
    typeof layer.removeEventListener === 'function'
    ? (layer as BufferingLayer)
    : undefined
}

/** Where a connection holds bytes unsent: its layers, top first, and the socket under them. */
interface ConnectionBuffers {
  layers: BufferingLayer[]
  /** The raw connection: its `drain` says the socket took everything it held. */
  raw: BufferingLayer
}

/** The buffering layers of a libp2p 3 TCP connection; undefined for another shape. */
function buffersOf(connection: Connection | undefined): ConnectionBuffers | undefined {
  const c = connection as unknown as { maConn?: unknown; muxer?: { maConn?: unknown } } | undefined
  const raw = bufferingLayer(c?.maConn)
  if (raw === undefined) return undefined
  const encrypted = bufferingLayer(c?.muxer?.maConn)
  return { layers: encrypted === undefined || encrypted === raw ? [raw] : [encrypted, raw], raw }
}

const backlogOf = ({ layers, raw }: ConnectionBuffers): number =>
  layers.reduce((sum, layer) => sum + layer.writeBufferLength, 0) +
  (raw.socket?.writableLength ?? 0)

/** A stream (or a connection's layer) that says when it can take more (`@libp2p/utils` 7). */
interface Drainable {
  writableNeedsDrain?: boolean
  addEventListener(
    type: 'close' | 'drain',
    listener: (event: Event) => void,
    options?: object,
  ): void
  removeEventListener(type: 'close' | 'drain', listener: (event: Event) => void): void
}

/**
 * Resolves at `target`'s next `drain` (at once if it needs none); rejects when it closes or
 * `signal` aborts. Not `onDrain()`: `@libp2p/utils` 7.4 keeps the promise of a stream's first
 * drain and hands it, settled, to every later call, so after one drain a writer never waited
 * again and a stream whose peer stopped reading took every block written to it (review).
 */
function whenDrained(target: Drainable, signal: AbortSignal): Promise<void> {
  if (target.writableNeedsDrain !== true) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      target.removeEventListener('drain', onDrain)
      target.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
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
      reject(signal.reason)
    }
    if (signal.aborted) return onAbort()
    target.addEventListener('drain', onDrain)
    target.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

/** Resolves after `ms`, or rejects when `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

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

/**
 * Whether every byte handed to `stream` so far has been encrypted (ADR 0099): nothing waits in
 * the stream's write buffer (no yamux window) or in the encrypted layer's (the socket full), and
 * the layer is noise, which encrypts what it takes at once into new buffers (yamux's muxer hands
 * a frame straight to it). The buffers are first-in, first-out: empty now, nothing sent before
 * is still unencrypted. The raw layer and the socket hold only ciphertext.
 */
export function sentThroughNoise(
  stream: { writeBufferLength?: number },
  connection: Connection | undefined,
): boolean {
  const buffers = buffersOf(connection)
  if (buffers === undefined || connection?.encryption !== NOISE) return false
  const { layers, raw } = buffers
  const encrypted = layers[0]
  return (
    stream.writeBufferLength === 0 &&
    layers.length === 2 &&
    encrypted !== undefined &&
    encrypted !== raw &&
    encrypted.writeBufferLength === 0
  )
}

/** The protocol id of `@chainsafe/libp2p-noise`'s encrypted connections. */
const NOISE = '/noise'

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
  /**
   * A deadline for a wait on `peer`, with the caller's signal if any. Bitswap's send queue hands
   * every job a signal of its own that only its shutdown aborts: `signal ?? timeout` never timed
   * out a serving send, and a peer that stopped reading held its blocks for ever (review).
   * Given the connection's buffers, it is a progress deadline: it is pushed back each time the
   * socket took {@link MIN_PROGRESS_BYTES} more, so a peer that reads slowly is never cut, one
   * that reads nothing (or a trickle) is, after the send timeout.
   */
  const deadline = (options?: SendOptions, buffers?: ConnectionBuffers) => {
    const expired = new AbortController()
    const timeoutMs = network.messageSendTimeout
    let timer: NodeJS.Timeout
    if (buffers === undefined) {
      timer = setTimeout(() => expired.abort(), timeoutMs)
    } else {
      let previous = backlogOf(buffers)
      let progress = 0
      let since = Date.now()
      timer = setInterval(
        () => {
          const now = backlogOf(buffers)
          progress += Math.max(0, previous - now)
          previous = now
          // an empty backlog is no progress: a stream whose yamux window the peer never opens
          // again waits with nothing in the connection, and must expire too
          if (progress >= MIN_PROGRESS_BYTES) {
            progress = 0
            since = Date.now()
          } else if (Date.now() - since >= timeoutMs) expired.abort()
        },
        Math.max(5, Math.min(1000, timeoutMs / 8)),
      )
    }
    timer.unref?.()
    return {
      expired: expired.signal,
      signal: options?.signal ? AbortSignal.any([options.signal, expired.signal]) : expired.signal,
      done: () => clearInterval(timer),
    }
  }
  /** Runs `wait` under a deadline; its expiry is the peer's fault: `PeerNotReadingError`. */
  const withinTimeout = async (
    peer: PeerId,
    what: string,
    options: SendOptions | undefined,
    wait: (signal: AbortSignal) => Promise<void>,
    buffers?: ConnectionBuffers,
  ) => {
    const { expired, signal, done } = deadline(options, buffers)
    try {
      await wait(signal)
    } catch (err) {
      if (!expired.aborted) throw err
      throw new PeerNotReadingError(`Peer did not ${what} in time`, {
        cause: err,
        details: { peer: peer.toString(), timeoutMs: network.messageSendTimeout },
        hint: 'Its connections are closed; it may connect and ask again.',
      })
    } finally {
      done()
    }
  }
  /** The buffers of the connection that carries `stream`, if it is one whose shape is known. */
  const connectionOf = (peer: PeerId, stream: SendStream) => {
    const connection = network.libp2p
      .getConnections(peer)
      .find((c) => (c.streams as unknown[]).includes(stream))
    const buffers = buffersOf(connection)
    return connection === undefined || buffers === undefined ? undefined : { connection, buffers }
  }
  // a timer per message only when the stream is full (the peer reads slower than this node sends)
  const drained = (peer: PeerId, stream: SendStream, options?: SendOptions) =>
    withinTimeout(
      peer,
      'read the stream',
      options,
      (signal) => whenDrained(stream, signal),
      connectionOf(peer, stream)?.buffers,
    )
  // a message is one `send`: each `send` was a yamux frame of its own (the length prefix and the
  // block's framing each a frame of a few bytes, each a noise message, each answered by a window
  // update from the receiver: 2 of every 6 frames a block took, ADR 0061)
  const send = async (
    peer: PeerId,
    stream: SendStream,
    message: EncodableMessage,
    options?: SendOptions,
  ) => {
    for (const { parts } of encodeMessages(message, network.maxOutgoingMessageSize)) {
      if (!stream.send(new Uint8ArrayList(...parts))) await drained(peer, stream, options)
    }
  }
  /**
   * Connections with bytes left unsent: each must make progress (its socket take
   * {@link MIN_PROGRESS_BYTES}, or all it holds) within each send timeout, one timer per
   * connection at a time, or it is closed.
   */
  const watched = new WeakSet<BufferingLayer>()
  const watchResidue = (peer: PeerId, connection: Connection, buffers: ConnectionBuffers) => {
    const { raw } = buffers
    if (watched.has(raw) || backlogOf(buffers) === 0) return
    watched.add(raw)
    const { expired, done } = deadline(undefined, buffers)
    const check = setInterval(
      () => {
        if (connection.status !== 'open' || backlogOf(buffers) === 0) {
          stop()
          return
        }
        if (!expired.aborted) return
        stop()
        connection.abort(
          new PeerNotReadingError('Peer took too little of the bytes left for it in time', {
            details: {
              peer: peer.toString(),
              bytes: backlogOf(buffers),
              timeoutMs: network.messageSendTimeout,
            },
          }),
        )
      },
      Math.max(5, Math.min(1000, network.messageSendTimeout / 8)),
    )
    check.unref?.()
    const stop = () => {
      clearInterval(check)
      done()
      watched.delete(raw)
    }
  }
  // waits until the connection that carries `stream` holds at most the backlog, and watches
  // what it still holds
  const connectionDrained = async (peer: PeerId, stream: SendStream, options?: SendOptions) => {
    const found = connectionOf(peer, stream)
    if (found === undefined) return
    const { connection, buffers } = found
    if (backlogOf(buffers) > CONNECTION_BACKLOG_BYTES) {
      await withinTimeout(
        peer,
        'read the connection',
        options,
        async (signal) => {
          while (backlogOf(buffers) > CONNECTION_BACKLOG_BYTES) {
            // the highest layer still waiting for the one below, else the socket's own
            // progress (its `drain` is the raw connection's), checked again shortly
            const waiting = buffers.layers.find((layer) => layer.writableNeedsDrain === true)
            if (waiting !== undefined) await whenDrained(waiting, signal)
            if (backlogOf(buffers) > CONNECTION_BACKLOG_BYTES) await sleep(5, signal)
            signal.throwIfAborted()
          }
        },
        buffers,
      )
    }
    watchResidue(peer, connection, buffers)
  }
  /** Closes the peer's connections: it let a send time out, what they hold is never read. */
  const cut = (peer: PeerId, err: PeerNotReadingError) => {
    for (const connection of network.libp2p.getConnections(peer)) connection.abort(err)
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
    let stream: SendStream | undefined
    await withinTimeout(peer, 'take a stream', options, async (signal) => {
      stream = await network.libp2p.dialProtocol(peer, BITSWAP_120, {
        signal,
        runOnLimitedConnection: network.runOnLimitedConnections,
      })
      // every message on it since it opened may be undelivered if it ends abnormally
      stream.addEventListener('close', (event) => {
        if (endedAbnormally(event)) lost.report(peer)
      })
      await stream.closeRead({ signal })
    })
    return stream as SendStream
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
    if (!writable(entry.stream)) {
      try {
        entry.stream = await open(peer, options)
      } catch (err) {
        if (err instanceof PeerNotReadingError) cut(peer, err)
        throw err
      }
    }
    const stream = entry.stream
    let sent = false
    try {
      await send(peer, stream, message, options)
      if (message.blocks.size > 0) await connectionDrained(peer, stream, options)
      closeWhenIdle(key, entry, stream)
      sent = true
    } catch (err) {
      // as the network's own send: reported, the stream dropped, the message not retried
      options?.onProgress?.(
        new CustomEvent('bitswap:send-wantlist:error', { detail: { peer, error: err } }),
      )
      entry.stream = undefined
      stream.abort(err as Error)
      if (err instanceof PeerNotReadingError) cut(peer, err)
    }
    network._updateSentStats(message.blocks)
    if (
      sent &&
      message.blocks.size > 0 &&
      sentThroughNoise(stream, connectionOf(peer, stream)?.connection)
    ) {
      for (const { data } of message.blocks.values()) recycleServedBlock(data)
    }
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
