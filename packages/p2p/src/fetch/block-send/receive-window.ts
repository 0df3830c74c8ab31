/**
 * The receiving side of a peer's block stream grants the sender yamux's largest stream window at
 * once (ADR 0061). Yamux starts every stream at a 256 KiB window and doubles it only when the
 * receiver's window updates come within four round trips of each other; on loopback the round
 * trip measured at connection start is 0-1 ms, and a node busy hashing and storing the blocks it
 * receives answers later than that: the window of a block stream stayed at 256 KiB for a whole
 * fetch, while the raw stream's (read by a bare loop) grew to 16 MiB in its first milliseconds.
 * At 256 KiB the sender cuts each 1 MiB block into 4 frames, each frame ends in a short noise
 * message, and the receiver answers each frame with a window update (a noise message, two socket
 * writes, and on the sender a decryption and a drain event): 334 updates per 100 MiB fetch,
 * against 34 for the raw stream.
 *
 * Bitswap's handler reads every message as it arrives (it never pauses a stream), so a larger
 * window holds no more bytes here; it only lets the sender put a whole block in one frame. The
 * window is granted by an ordinary yamux window update: any sender (Kubo's, stock helia's) takes
 * it. Installed on the node's own bitswap protocol handler; a stream that is not yamux's (another
 * muxer) is left as it is.
 */
import type { Helia } from '@helia/interface'
import type { Libp2p, Stream } from '@libp2p/interface'
import { bitswapBroker } from '../have-first/bitswap-parts.ts'
import { createMessageBudget, type MessageBudgetInit } from './message-budget.ts'

/** The parts of a `@chainsafe/libp2p-yamux` 8 stream used here. */
interface YamuxWindow {
  recvWindow: number
  maxStreamWindowSize: number
  sendWindowUpdate(): void
}

function yamuxWindowOf(stream: Stream): YamuxWindow | undefined {
  const s = stream as unknown as Partial<YamuxWindow>
  return typeof s.recvWindow === 'number' &&
    typeof s.maxStreamWindowSize === 'number' &&
    typeof s.sendWindowUpdate === 'function'
    ? (s as YamuxWindow)
    : undefined
}

/** Grants `stream`'s sender the largest window this node allows (no-op for other muxers). */
export function widenReceiveWindow(stream: Stream): void {
  const window = yamuxWindowOf(stream)
  if (window === undefined || window.recvWindow >= window.maxStreamWindowSize) return
  window.recvWindow = window.maxStreamWindowSize
  window.sendWindowUpdate()
}

/** The parts of bitswap's `Network` its protocol handler is registered with. */
interface ReceivingNetwork {
  protocols: string[]
  maxInboundStreams: number
  maxOutboundStreams: number
  runOnLimitedConnections: boolean
  _onStream(stream: Stream, connection: unknown): void
}

function networkOf(helia: Helia): ReceivingNetwork {
  const network = bitswapBroker(helia).bitswap.network as unknown as Partial<ReceivingNetwork>
  if (
    !Array.isArray(network.protocols) ||
    typeof network.maxInboundStreams !== 'number' ||
    typeof network.maxOutboundStreams !== 'number' ||
    typeof network._onStream !== 'function'
  ) {
    throw new Error('@helia/bitswap internals are not the ones receive-window.ts drives')
  }
  return network as ReceivingNetwork
}

/**
 * Every bitswap stream a peer opens to this node gets the largest receive window before
 * bitswap's own handler reads it, and its messages are counted against the connection's
 * message budget (`message-budget.ts`).
 * @throws {Error} if helia's bitswap is not of the expected shape.
 */
export async function installReceiveWindow(
  helia: Helia,
  libp2p: Libp2p,
  budgetInit: MessageBudgetInit = {},
): Promise<void> {
  const network = networkOf(helia)
  // its messages counted before bitswap reads them (ADR 0090: a flood of tiny messages)
  const budget = createMessageBudget(budgetInit)
  await libp2p.handle(
    network.protocols,
    (stream, connection) => {
      budget.watch(stream, connection)
      widenReceiveWindow(stream)
      network._onStream(stream, connection)
    },
    {
      maxInboundStreams: network.maxInboundStreams,
      maxOutboundStreams: network.maxOutboundStreams,
      runOnLimitedConnection: network.runOnLimitedConnections === true,
      force: true,
    },
  )
}
