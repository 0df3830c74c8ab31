/**
 * libp2p's own store is in memory (ADR 0050), but the peer records a node learnt are kept in its
 * data folder: a restarted node can still dial the peers it met (a keyguard re-serves a journaled
 * release to an executor that does not dial back). Real nodes on loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode } from '../src/index.ts'

describe('peer records across a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'digicap-peer-records-'))
  const nodes: DigicapNode[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    rmSync(dir, { recursive: true, force: true })
  })

  it('a node with a data folder still knows how to reach a peer it met, after a clean stop', async () => {
    const peer = await createDigicapNode({ pubsub: false })
    nodes.push(peer)
    const first = await createDigicapNode({ pubsub: false, dataDir: dir })
    await first.libp2p.dial(multiaddr(peer.multiaddrs()[0] as string))
    expect((await first.libp2p.peerStore.get(peer.libp2p.peerId)).addresses.length).toBeGreaterThan(
      0,
    )
    await first.stop()

    const again = await createDigicapNode({ pubsub: false, dataDir: dir })
    nodes.push(again)
    // before: libp2p's store in memory only, the restarted node had no record of the peer
    const known = await again.libp2p.peerStore.get(peer.libp2p.peerId)
    const listened = (peer.multiaddrs()[0] as string).split('/p2p/')[0]
    expect(known.addresses.map((a) => a.multiaddr.toString())).toContain(listened)
    // and it dials the peer by its id alone
    await again.libp2p.dial(peer.libp2p.peerId)
    expect(again.libp2p.getConnections(peer.libp2p.peerId).length).toBeGreaterThan(0)
  }, 60_000)
})
