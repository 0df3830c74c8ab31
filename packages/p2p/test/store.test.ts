import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createDigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { collect } from './bytes.ts'
import { describeCapsuleStore } from './store-compliance.ts'

describeCapsuleStore('helia, in-memory blockstore', async () => {
  const node = await createDigicapNode()
  return { store: heliaCapsuleStore(node.helia), close: () => node.stop() }
})

describeCapsuleStore('helia, blockstore-fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'digicap-p2p-fs-'))
  const node = await createDigicapNode({ dataDir: dir })
  return {
    store: heliaCapsuleStore(node.helia),
    async close() {
      await node.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('heliaCapsuleStore between two nodes', () => {
  it('adds on A and fetches on B over bitswap on loopback', async () => {
    const a = await createDigicapNode()
    const b = await createDigicapNode()
    try {
      const bytes = randomBytes(5 * 1024 * 1024 + 3)
      const cid = await heliaCapsuleStore(a.helia).put(bytes)
      await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
      const storeB = heliaCapsuleStore(b.helia)
      expect(await storeB.has(cid)).toBe(false)
      const got = await collect(storeB.get(cid, { signal: AbortSignal.timeout(20_000) }))
      expect(got.equals(bytes)).toBe(true)
      await storeB.pin(cid)
      expect(await storeB.has(cid)).toBe(true)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })

  it('fetches a streamed capsule of more chunks than the import pool holds (hung before)', async () => {
    const a = await createDigicapNode()
    const b = await createDigicapNode()
    try {
      const bytes = randomBytes(12 * 1024 * 1024)
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += 1024 * 1024) yield bytes.subarray(i, i + 1024 * 1024)
      }
      const cid = await heliaCapsuleStore(a.helia).put(chunks())
      await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
      // before: blocks past the pool's first writes no longer hashed to their CIDs, B dropped
      // them and the fetch waited until aborted
      const got = await collect(
        heliaCapsuleStore(b.helia).get(cid, { signal: AbortSignal.timeout(30_000) }),
      )
      expect(got.equals(bytes)).toBe(true)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }, 60_000)

  it('keeps blocks on disk across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'digicap-p2p-restart-'))
    try {
      const first = await createDigicapNode({ dataDir: dir })
      const bytes = randomBytes(2000)
      const cid = await heliaCapsuleStore(first.helia).put(bytes)
      await first.stop()
      expect((await readdir(join(dir, 'blocks'))).length).toBeGreaterThan(0)
      const second = await createDigicapNode({ dataDir: dir })
      try {
        const store = heliaCapsuleStore(second.helia)
        expect(await store.has(cid)).toBe(true)
        expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
      } finally {
        await second.stop()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('datastore option', () => {
  it("'memory' keeps blocks on disk but no datastore folder", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'digicap-p2p-memds-'))
    try {
      const node = await createDigicapNode({ dataDir: dir, datastore: 'memory' })
      const cid = await heliaCapsuleStore(node.helia).put(randomBytes(100))
      await node.stop()
      expect((await readdir(dir)).sort()).toEqual(['blocks', 'filestore']) // copies and file references
      const again = await createDigicapNode({ dataDir: dir })
      expect(await heliaCapsuleStore(again.helia).has(cid)).toBe(true)
      await again.stop()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
