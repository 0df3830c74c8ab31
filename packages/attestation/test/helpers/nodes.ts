/** Two real libp2p 3 nodes on loopback (TCP, noise, yamux, identify), `a` dialled to `b`. */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

export async function createNode(): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  })
}

export async function createPair(): Promise<{ a: Libp2p; b: Libp2p; stop: () => Promise<void> }> {
  const [a, b] = await Promise.all([createNode(), createNode()])
  await a.dial(b.getMultiaddrs())
  return { a, b, stop: () => Promise.all([a.stop(), b.stop()]).then(() => undefined) }
}
