/**
 * Gives a libp2p node to helia: what `withLibp2pLight` from `@helia/libp2p` wires, minus its
 * package index (which loads libp2p's default transports and services). The node is created
 * by the caller (`createLibp2p`, not started); helia starts and stops it with itself, and
 * routes content and peer lookups through it.
 */
import type { Helia, Peer, Provider, Router } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { Libp2p, PeerInfo, ServiceMap } from '@libp2p/interface'
import { peerIdFromCID } from '@libp2p/peer-id'

/** Attaches `libp2p` to `helia` (as `helia.libp2p`) and adds it as helia's router. */
export function withLibp2p<S extends ServiceMap>(
  helia: Helia,
  libp2p: Libp2p<S>,
): HeliaWithLibp2p<S> {
  Object.defineProperty(helia, 'libp2p', { configurable: true, enumerable: true, value: libp2p })
  const withNet = helia as HeliaWithLibp2p<S>
  withNet.addMixin({
    name: 'libp2p',
    start: async () => {
      if (!withNet.hasRouter(LIBP2P_ROUTER)) withNet.addRouter(libp2pRouter(libp2p))
      await libp2p.start()
    },
    stop: async () => {
      await libp2p.stop()
    },
  })
  return withNet
}

const LIBP2P_ROUTER = 'libp2p-router'

/** A helia `Router` over libp2p's content and peer routing (kad-dht when enabled). */
function libp2pRouter(libp2p: Libp2p): Router {
  const toPeer = (info: PeerInfo): Peer => ({ ...info, id: info.id.toCID(), router: LIBP2P_ROUTER })
  return {
    name: LIBP2P_ROUTER,
    provide: (cid, options) => libp2p.contentRouting.provide(cid, options),
    cancelReprovide: (key, options) => libp2p.contentRouting.cancelReprovide(key, options),
    async *findProviders(cid, options): AsyncGenerator<Provider> {
      for await (const info of libp2p.contentRouting.findProviders(cid, options)) {
        yield { ...toPeer(info), fallback: false }
      }
    },
    put: (key, value, options) => libp2p.contentRouting.put(key, value, options),
    get: async (key, options) =>
      (await libp2p.contentRouting.get(key, options)) as Uint8Array<ArrayBuffer>,
    findPeer: async (peer, options) =>
      toPeer(await libp2p.peerRouting.findPeer(peerIdFromCID(peer), options)),
    async *getClosestPeers(key, options): AsyncGenerator<Peer> {
      for await (const info of libp2p.peerRouting.getClosestPeers(key, options)) yield toPeer(info)
    },
  }
}
