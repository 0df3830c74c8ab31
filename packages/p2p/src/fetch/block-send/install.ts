/**
 * Block messages sent without copying the blocks (ADR 0050). `@helia/bitswap` 4's network
 * encodes a message with blocks twice (`splitMessage` measures each block by encoding it, then
 * encodes the message), then hands it to the stream: the serving side of a 100 MiB fetch
 * allocated and copied 200 MiB besides the stream's own encryption. A message that carries
 * blocks is sent here the way the network sends it (the network's own send queue, per peer;
 * one stream for the message, in parts of at most the network's message size; the same
 * progress events and counters), but encoded by `encode.ts` around the blocks' own bytes.
 * Messages without blocks (wants, presences) stay the network's. Installed on the node's own
 * bitswap instance, as ADRs 0041 and 0044 do; the shapes read here are checked at start.
 */
import type { Helia } from '@helia/interface'
import type { PeerId } from '@libp2p/interface'
import { bitswapBroker } from '../have-first/bitswap-parts.ts'
import { type EncodableMessage, encodeMessages } from './encode.ts'

/** The bitswap protocol the network sends on. */
const BITSWAP_120 = '/ipfs/bitswap/1.2.0'

interface SendOptions {
  signal?: AbortSignal
  onProgress?: (event: Event) => void
}

interface SendStream {
  send(data: Uint8Array): boolean
  onDrain(options?: SendOptions): Promise<void>
  closeRead(options?: SendOptions): Promise<void>
  close(options?: SendOptions): Promise<void>
  abort(err: Error): void
}

interface QueueJobOptions extends SendOptions {
  peerId: PeerId
  message: EncodableMessage
}

/** The parts of bitswap's `Network` used here. */
interface SendingNetwork {
  sendMessage(peer: PeerId, message: EncodableMessage, options?: SendOptions): Promise<void>
  sendQueue: {
    add(job: (options: QueueJobOptions) => Promise<void>, options: QueueJobOptions): Promise<void>
  }
  libp2p: {
    dialProtocol(peer: PeerId, protocol: string, options: object): Promise<SendStream>
  }
  maxOutgoingMessageSize: number
  messageSendTimeout: number
  runOnLimitedConnections: boolean
  _updateSentStats(blocks: Map<string, { data: Uint8Array }>): void
}

export interface BlockSend {
  /** Gives the network its own `sendMessage` back. */
  stop(): void
}

function networkOf(helia: Helia): SendingNetwork {
  const network = bitswapBroker(helia).bitswap.network as unknown as Partial<SendingNetwork>
  if (
    typeof network.sendMessage !== 'function' ||
    typeof network.sendQueue?.add !== 'function' ||
    typeof network.libp2p?.dialProtocol !== 'function' ||
    typeof network.maxOutgoingMessageSize !== 'number' ||
    typeof network.messageSendTimeout !== 'number' ||
    typeof network._updateSentStats !== 'function'
  ) {
    throw new Error('@helia/bitswap internals are not the ones block-send.ts drives')
  }
  return network as SendingNetwork
}

/** Sends every message with blocks of the node's bitswap without copying the blocks. */
export function installBlockSend(helia: Helia): BlockSend {
  const network = networkOf(helia)
  const ownSend = network.sendMessage
  const send = async (stream: SendStream, message: EncodableMessage, options: SendOptions) => {
    for (const { parts } of encodeMessages(message, network.maxOutgoingMessageSize)) {
      for (const part of parts) {
        if (!stream.send(part)) await stream.onDrain(options)
      }
    }
  }
  network.sendMessage = (peer, message, options) => {
    if (message.blocks.size === 0) return ownSend.call(network, peer, message, options)
    return network.sendQueue.add(
      async (job) => {
        // read at run time: the network merges later messages for this peer into a queued job
        const queued = job.message
        job.onProgress?.(new CustomEvent('bitswap:send-wantlist', { detail: peer }))
        const stream = await network.libp2p.dialProtocol(peer, BITSWAP_120, {
          ...job,
          runOnLimitedConnection: network.runOnLimitedConnections,
        })
        await stream.closeRead(job)
        try {
          await send(stream, queued, job)
          await stream.close(job)
        } catch (err) {
          job.onProgress?.(
            new CustomEvent('bitswap:send-wantlist:error', { detail: { peer, error: err } }),
          )
          stream.abort(err as Error)
        }
        network._updateSentStats(queued.blocks)
      },
      {
        ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
        peerId: peer,
        signal: options?.signal ?? AbortSignal.timeout(network.messageSendTimeout),
        message,
      },
    )
  }
  return {
    stop() {
      network.sendMessage = ownSend
    },
  }
}
