/**
 * Want-list entries to peers, gathered for a few milliseconds and sent as one message per
 * peer: a window of blocks asked of every connected peer is one message each, not one stream
 * per block and peer (bitswap's network opens a stream per message).
 */
import type { PeerId } from '@libp2p/interface'
import { base64 } from 'multiformats/bases/base64'
import type { CID } from 'multiformats/cid'
import type { BitswapNetwork, OutgoingMessage, WantlistEntry } from './bitswap-parts.ts'

/** How long entries wait for others before their message goes (bitswap's own debounce). */
export const OUTBOX_DEBOUNCE_MS = 10

export type WantKind = 'have' | 'block' | 'cancel'

export interface Outbox {
  add(peer: PeerId, cid: CID, kind: WantKind): void
  stop(): void
}

function entry(cid: CID, kind: WantKind): WantlistEntry {
  return {
    cid: cid.bytes,
    priority: 1,
    wantType: kind === 'have' ? 'WantHave' : 'WantBlock',
    cancel: kind === 'cancel',
    // a peer without the block says so at once: the fetch moves on instead of waiting
    sendDontHave: true,
  }
}

/** `onError` hears of a message that could not be sent (the peer is then asked again later). */
export function createOutbox(network: BitswapNetwork, onError: (peer: PeerId) => void): Outbox {
  const pending = new Map<string, { peer: PeerId; message: OutgoingMessage }>()
  let timer: NodeJS.Timeout | undefined
  const flush = () => {
    timer = undefined
    const batch = [...pending.values()]
    pending.clear()
    for (const { peer, message } of batch) {
      network.sendMessage(peer, message).catch(() => onError(peer))
    }
  }
  return {
    add(peer, cid, kind) {
      const key = peer.toString()
      let item = pending.get(key)
      if (!item) {
        item = {
          peer,
          message: {
            full: false,
            pendingBytes: 0,
            wantlist: new Map(),
            blocks: new Map(),
            blockPresences: new Map(),
          },
        }
        pending.set(key, item)
      }
      // the same key as bitswap's own messages, so a merged message holds one entry per block
      item.message.wantlist.set(base64.encode(cid.multihash.bytes), entry(cid, kind))
      timer ??= setTimeout(flush, OUTBOX_DEBOUNCE_MS)
    },
    stop() {
      clearTimeout(timer)
      pending.clear()
    },
  }
}
