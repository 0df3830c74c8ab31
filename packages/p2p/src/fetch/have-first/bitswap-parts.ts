/**
 * The parts of `@helia/bitswap` 4 (pinned) the have-first fetch drives: the broker whose
 * `retrieve` it takes over, the network that sends messages and reports peers, the want-list
 * that decodes incoming blocks and presences (its events), and the serving side's ledgers (what
 * each peer asks of us). Read from the node's own instance and checked at start, as
 * `want-resend.ts` does: an upgrade that moves them fails `createDigicapNode`, not a fetch.
 */
import type { Helia } from '@helia/interface'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** A want-list entry as bitswap's message queue holds it (`WantType` values are strings). */
export interface WantlistEntry {
  cid: Uint8Array
  priority: number
  wantType: 'WantHave' | 'WantBlock'
  cancel: boolean
  sendDontHave: boolean
}

/** The shape of bitswap's `QueuedBitswapMessage` (merged and split by its network). */
export interface OutgoingMessage {
  full: boolean
  pendingBytes: number
  wantlist: Map<string, WantlistEntry>
  blocks: Map<string, unknown>
  blockPresences: Map<string, unknown>
}

export interface BlockEventDetail {
  sender: PeerId
  cid: CID
  block: Uint8Array
}

export interface PresenceEventDetail {
  sender: PeerId
  cid: CID
  has: boolean
  /** Set when the presence comes with a block (handled as a block). */
  block?: Uint8Array
}

export interface BitswapNetwork extends EventTarget {
  sendMessage(peer: PeerId, message: OutgoingMessage, options?: unknown): Promise<void>
  findAndConnect(cid: CID, options?: { signal?: AbortSignal }): Promise<void>
}

export interface RetrieveOptions {
  signal?: AbortSignal
  onProgress?: (event: Event) => void
  validateFn?: (block: Uint8Array) => Promise<void>
}

export interface BitswapBroker {
  name: string
  retrieve(cid: CID, options?: RetrieveOptions): Promise<Uint8Array>
  bitswap: {
    network: BitswapNetwork
    wantList: EventTarget & { peers: { keys(): IterableIterator<PeerId> } }
    peerWantLists: { ledgerMap: { get(peer: PeerId): { wants: Map<string, unknown> } | undefined } }
  }
}

/**
 * The node's bitswap broker.
 * @throws {Error} if helia has no bitswap broker of the expected shape.
 */
export function bitswapBroker(helia: Helia): BitswapBroker {
  const brokers = (helia as unknown as { blockBrokers?: { name: string }[] }).blockBrokers ?? []
  const broker = brokers.find((b) => b.name === 'bitswap') as Partial<BitswapBroker> | undefined
  const bitswap = broker?.bitswap
  if (
    typeof broker?.retrieve !== 'function' ||
    typeof bitswap?.network?.sendMessage !== 'function' ||
    typeof bitswap.network.addEventListener !== 'function' ||
    typeof bitswap.network.findAndConnect !== 'function' ||
    typeof bitswap.wantList?.addEventListener !== 'function' ||
    typeof bitswap.wantList.peers?.keys !== 'function' ||
    typeof bitswap.peerWantLists?.ledgerMap?.get !== 'function'
  ) {
    throw new Error('@helia/bitswap internals are not the ones the have-first fetch drives')
  }
  return broker as BitswapBroker
}
