/**
 * The capsule import holds a bounded number of chunks whatever the capsule's size: every leaf
 * is written from one of the pool's buffers, the source is never read more than the pool
 * ahead of the blockstore, and the CIDs are the stock importer's.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core'
import { importer } from 'ipfs-unixfs-importer'
import type { CID } from 'multiformats/cid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CapsuleStoreError,
  capsuleImportOptions,
  createBufferPool,
  IMPORT_WRITE_CONCURRENCY,
  importCapsule,
  openFsCapsuleImporter,
  UNIXFS_CHUNK_SIZE,
} from '../src/import.ts'
import { collect } from './bytes.ts'

const MiB = 1_048_576

/** A deterministic stream of `total` bytes in odd-sized pieces, counting what was pulled. */
function source(total: number, counter: { pulled: number }): AsyncIterable<Uint8Array> {
  return (async function* () {
    let i = 0
    while (counter.pulled < total) {
      const n = Math.min(300_007, total - counter.pulled)
      const piece = createHash('sha512').update(String(i++)).digest()
      const out = Buffer.alloc(n)
      for (let o = 0; o < n; o += piece.length) piece.copy(out, o)
      counter.pulled += n
      yield out
    }
  })()
}

/** A blockstore whose writes take a while, recording what each write saw. */
function slowSink(counter: { pulled: number }) {
  const store = new MemoryBlockstore()
  const seen = { buffers: new Set<ArrayBufferLike>(), maxLead: 0, stored: 0 }
  return {
    seen,
    store,
    async put(cid: CID, bytes: Uint8Array) {
      seen.buffers.add(bytes.buffer)
      seen.maxLead = Math.max(seen.maxLead, counter.pulled - seen.stored)
      await new Promise((r) => setTimeout(r, 2))
      seen.stored += bytes.byteLength
      // a copy: the pool reuses `bytes` once this returns
      return store.put(cid, Uint8Array.from(bytes))
    },
  }
}

/** The stock importer's CID for the same bytes (helia's defaults overridden by the profile). */
async function stockCid(total: number): Promise<string> {
  let last: CID | undefined
  for await (const entry of importer(
    [{ content: source(total, { pulled: 0 }) }],
    new MemoryBlockstore(),
    { ...capsuleImportOptions(), wrapWithDirectory: false },
  )) {
    last = entry.cid
  }
  return String(last)
}

describe('importCapsule', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-import-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('imports 48 MiB through at most its pool of buffers, reading ahead at most the pool', async () => {
    const total = 48 * MiB + 5
    const counter = { pulled: 0 }
    const sink = slowSink(counter)
    const pool = createBufferPool(2 * IMPORT_WRITE_CONCURRENCY + 2, UNIXFS_CHUNK_SIZE)
    const cid = await importCapsule(source(total, counter), sink, { pool })
    // 49 leaves were written from the pool's 10 buffers: a fresh buffer per chunk (or a copy
    // of the whole capsule) would show up here as 49 distinct buffers.
    const leafBuffers = [...sink.seen.buffers].filter((b) => b.byteLength === UNIXFS_CHUNK_SIZE)
    expect(leafBuffers.length).toBeLessThanOrEqual(pool.count)
    expect(pool.maxInUse).toBeLessThanOrEqual(pool.count)
    expect(pool.inUse).toBe(0)
    // never more than the pool (plus one source piece) read ahead of what is stored
    expect(sink.seen.maxLead).toBeLessThanOrEqual((pool.count + 1) * MiB)
    expect(String(cid)).toBe(await stockCid(total))
    // and every block reads back as the bytes (the pool's reuse corrupted nothing)
    const back = await collect(unixfs({ blockstore: sink.store } as never).cat(cid))
    const expected = await collect(source(total, { pulled: 0 }))
    expect(back.equals(expected)).toBe(true)
  }, 60_000)

  it.each([
    0,
    1,
    MiB - 1,
    MiB,
    MiB + 1,
    3 * MiB + 5,
  ])('%i bytes from a file, a stream and a byte array: the stock CID', async (size) => {
    const bytes = randomBytes(size)
    const path = join(dir, `f-${size}`)
    await writeFile(path, bytes)
    const store = new MemoryBlockstore()
    const fromFile = String(await importCapsule({ path }, store))
    const fromArray = String(await importCapsule(bytes, store))
    async function* pieces() {
      for (let i = 0; i < size; i += 70_001) yield bytes.subarray(i, i + 70_001)
    }
    const fromStream = String(await importCapsule(pieces(), store))
    let stock: CID | undefined
    for await (const e of importer([{ content: bytes }], new MemoryBlockstore(), {
      ...capsuleImportOptions(),
      wrapWithDirectory: false,
    })) {
      stock = e.cid
    }
    expect([fromFile, fromArray, fromStream]).toEqual([String(stock), String(stock), String(stock)])
  })

  it('a pool smaller than the write window is a typed error, not a hang', async () => {
    const pool = createBufferPool(IMPORT_WRITE_CONCURRENCY - 1, UNIXFS_CHUNK_SIZE)
    const err = await importCapsule(source(8 * MiB, { pulled: 0 }), new MemoryBlockstore(), {
      pool,
    }).catch((e) => e)
    expect(err).toBeInstanceOf(CapsuleStoreError)
  })

  it('bad sources, missing files, failed writes and aborts are CapsuleStoreErrors', async () => {
    const store = new MemoryBlockstore()
    const failing = {
      put: async () => {
        throw new Error('disk full')
      },
    }
    const aborted = AbortSignal.abort()
    const errors = await Promise.all([
      importCapsule(42 as never, store).catch((e) => e),
      importCapsule({ path: join(dir, 'missing') }, store).catch((e) => e),
      importCapsule(randomBytes(10), failing).catch((e) => e),
      importCapsule(source(3 * MiB, { pulled: 0 }), store, { signal: aborted }).catch((e) => e),
      importCapsule(
        (async function* () {
          yield 'text'
        })() as never,
        store,
      ).catch((e) => e),
    ])
    for (const e of errors) expect(e).toBeInstanceOf(CapsuleStoreError)
    expect(errors[3].hint).toMatch(/aborted/)
  })

  it('openFsCapsuleImporter adds to <dataDir>/blocks without a node', async () => {
    const dataDir = join(dir, 'node')
    const blocks = await openFsCapsuleImporter(dataDir)
    const bytes = randomBytes(2 * MiB + 1)
    const cid = await blocks.put(bytes)
    await blocks.close()
    expect(cid).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
    expect((await readdir(join(dataDir, 'blocks'))).length).toBeGreaterThan(0)
  })
})
