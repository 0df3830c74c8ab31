/**
 * Two real nodes on loopback, B connected to A: the set-up of the tests that fetch from A into B.
 * One copy of it, so every such test starts its pair the same way.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createDigicapNode, type DigicapNode } from '../src/index.ts'

/** Starts A and B and dials A from B. */
export async function connectedPair(): Promise<[DigicapNode, DigicapNode]> {
  const [a, b] = await Promise.all([createDigicapNode(), createDigicapNode()])
  await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
  return [a, b]
}

/** Stops the nodes a test started (any not started yet is skipped). */
export async function stopNodes(...nodes: (DigicapNode | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((n) => n?.stop()))
}
