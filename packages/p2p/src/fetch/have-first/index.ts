/** Installs the have-first fetch (ADR 0044) on a started helia node's bitswap. */
import type { Helia } from '@helia/interface'
import type { Libp2p } from '@libp2p/interface'
import { bitswapBroker } from './bitswap-parts.ts'
import { createHaveFirstFetch, type HaveFirstFetch, type HaveFirstInit } from './have-first.ts'

export type { HaveFirstFetch, HaveFirstInit, TrackedPeers } from './have-first.ts'

/**
 * Replaces the node's bitswap `retrieve` with the have-first fetch.
 * @throws {Error} if helia has no bitswap broker of the expected shape.
 */
export function installHaveFirst(
  helia: Helia,
  libp2p: Libp2p,
  timeoutMs: number,
  init: Omit<HaveFirstInit, 'timeoutMs'> = {},
): HaveFirstFetch {
  return createHaveFirstFetch(
    {
      broker: bitswapBroker(helia),
      connectedPeers: () => libp2p.getConnections().map((c) => c.remotePeer),
      dial: (peer, options) => libp2p.dial(peer, options),
    },
    { ...init, timeoutMs },
  )
}
