/**
 * A file's range read leaf by leaf (ADR 0060): the bytes of any range of any file the importer
 * builds (raw or dag-pb leaves, one level or several), each leaf read once and handed on as the
 * store gave it. The exporter copied every leaf (`it-to-buffer`) and read the first leaf after
 * the range: a window of 8 leaves read 9, and gave copies.
 */
import { randomBytes } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core'
import fc from 'fast-check'
import { UnixFS } from 'ipfs-unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { code as RAW_CODE } from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { describe, expect, it } from 'vitest'
import { MAX_FILE_DAG_DEPTH } from '../src/read/file-range.ts'
import { unixfsReader } from '../src/read/unixfs-reader.ts'

/** `bytes` imported into a memory store: `chunk`-byte leaves, `links` children per node. */
async function imported(bytes: Uint8Array, chunk: number, links: number, rawLeaves = true) {
  const store = new MemoryBlockstore()
  let root: CID | undefined
  for await (const entry of importer([{ content: bytes }], store, {
    cidVersion: 1,
    rawLeaves,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: chunk }),
    layout: balanced({ maxChildrenPerNode: links }),
  })) {
    root = entry.cid
  }
  return { store, root: root as CID }
}

async function cat(store: MemoryBlockstore, root: CID, options: object = {}) {
  const parts: Uint8Array[] = []
  for await (const part of unixfsReader(store as never).cat(root, options)) parts.push(part)
  return parts
}

describe('a range of a file read leaf by leaf', () => {
  it('gives the bytes of any range, for raw and dag-pb leaves, one level or three', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 40_000 }),
        fc.constantFrom(1000, 4096),
        fc.constantFrom(3, 1024),
        fc.boolean(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1.2, noNaN: true }),
        async (size, chunk, links, rawLeaves, from, span) => {
          const bytes = new Uint8Array(randomBytes(size))
          const { store, root } = await imported(bytes, chunk, links, rawLeaves)
          const offset = Math.floor(from * size)
          const length = Math.floor(span * size)
          const got = Buffer.concat(await cat(store, root, { offset, length }))
          expect(got.equals(bytes.subarray(offset, offset + length))).toBe(true)
          expect(Buffer.concat(await cat(store, root)).equals(bytes)).toBe(true)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('a window of 8 leaves reads those 8 (the exporter read 9) and hands on their own bytes', async () => {
    const chunk = 4096
    const bytes = new Uint8Array(randomBytes(20 * chunk))
    const { store, root } = await imported(bytes, chunk, 1024)
    const leavesRead: string[] = []
    const stored = new Map<string, Uint8Array>()
    const ownGet = store.get.bind(store)
    store.get = async function* (key, options) {
      for await (const block of ownGet(key, options)) {
        if (key.code === RAW_CODE) {
          leavesRead.push(key.toString())
          stored.set(key.toString(), block)
        }
        yield block
      }
    }
    const parts = await cat(store, root, { offset: 8 * chunk, length: 8 * chunk })
    expect(Buffer.concat(parts).equals(bytes.subarray(8 * chunk, 16 * chunk))).toBe(true)
    expect(leavesRead).toHaveLength(8)
    // every part is a view of a block the store gave, not a copy of it
    const buffers = new Set([...stored.values()].map((b) => b.buffer))
    expect(parts).toHaveLength(8)
    for (const part of parts) expect(buffers.has(part.buffer)).toBe(true)
  })

  it('reads at most `blockReadConcurrency` leaves ahead of the one handed on', async () => {
    const chunk = 4096
    const bytes = new Uint8Array(randomBytes(12 * chunk))
    const { store, root } = await imported(bytes, chunk, 1024)
    let started = 0
    let handedOn = 0
    let most = 0
    const ownGet = store.get.bind(store)
    store.get = async function* (key, options) {
      if (key.code === RAW_CODE) {
        started++
        most = Math.max(most, started - handedOn)
        await new Promise((r) => setTimeout(r, 2))
      }
      yield* ownGet(key, options)
    }
    const parts: Uint8Array[] = []
    for await (const part of unixfsReader(store as never).cat(root, {
      blockReadConcurrency: 3,
    } as never)) {
      handedOn++
      parts.push(part)
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    expect(most).toBeLessThanOrEqual(3)
    expect(most).toBeGreaterThan(1)
  })

  it('a DAG whose block sizes lie is refused (typed), never read with its bytes shifted', async () => {
    // every block matches its CID; only the sizes the parent gives its children are wrong
    const store = new MemoryBlockstore()
    const put = async (code: number, bytes: Uint8Array) => {
      const cid = CID.createV1(code, await sha256.digest(bytes))
      await store.put(cid, bytes)
      return cid
    }
    const fileNode = (sizes: bigint[], links: CID[]) =>
      dagPb.encode({
        Data: new UnixFS({ type: 'file', blockSizes: sizes }).marshal(),
        Links: links.map((Hash) => ({ Hash })),
      })
    const long = await put(raw.code, new Uint8Array(randomBytes(15)))
    const short = await put(raw.code, new Uint8Array(randomBytes(5)))
    // raw leaves of 15 and 5 bytes said to be 10 and 10
    const rawLiar = await put(dagPb.code, fileNode([10n, 10n], [long, short]))
    await expect(cat(store, rawLiar, { offset: 5, length: 10 })).rejects.toMatchObject({
      name: 'NotUnixFSError',
    })
    await expect(cat(store, rawLiar)).rejects.toMatchObject({ name: 'NotUnixFSError' })
    // an inner node of 20 bytes said to be 12
    const inner = await put(dagPb.code, fileNode([15n, 5n], [long, short]))
    const tail = await put(raw.code, new Uint8Array(randomBytes(8)))
    const nodeLiar = await put(dagPb.code, fileNode([12n, 8n], [inner, tail]))
    await expect(cat(store, nodeLiar, { offset: 10, length: 6 })).rejects.toMatchObject({
      name: 'NotUnixFSError',
    })
    // the same nodes with true sizes read back whole
    const honest = await put(dagPb.code, fileNode([20n, 8n], [inner, tail]))
    expect(Buffer.concat(await cat(store, honest))).toHaveLength(28)
  })

  it('a DAG deeper than MAX_FILE_DAG_DEPTH is refused (typed) before its bottom is read; one at the limit reads', async () => {
    // one node per level over a one-byte leaf: each block matches its CID and every size is true
    const store = new MemoryBlockstore()
    const leafBytes = Uint8Array.of(7)
    const leaf = CID.createV1(raw.code, await sha256.digest(leafBytes))
    await store.put(leaf, leafBytes)
    const spine: CID[] = [leaf]
    for (let level = 0; level < 10_000; level++) {
      const block = dagPb.encode({
        Data: new UnixFS({ type: 'file', blockSizes: [1n] }).marshal(),
        Links: [{ Hash: spine[spine.length - 1] as CID }],
      })
      const cid = CID.createV1(dagPb.code, await sha256.digest(block))
      await store.put(cid, block)
      spine.push(cid)
    }
    // the root is level 0: `MAX_FILE_DAG_DEPTH + 1` file nodes above the leaf still read
    expect(Buffer.concat(await cat(store, spine[MAX_FILE_DAG_DEPTH + 1] as CID))).toEqual(
      Buffer.from(leafBytes),
    )
    await expect(cat(store, spine[MAX_FILE_DAG_DEPTH + 2] as CID)).rejects.toMatchObject({
      name: 'NotUnixFSError',
    })
    // 10 000 levels overflowed the stack (a RangeError) after 2 s; now refused at level 64
    const started = performance.now()
    await expect(cat(store, spine[10_000] as CID)).rejects.toMatchObject({
      name: 'NotUnixFSError',
    })
    expect(performance.now() - started).toBeLessThan(1_000)
  })

  it('an offset past the end is refused, as the exporter refuses it; a directory is not a file', async () => {
    const { store, root } = await imported(new Uint8Array(randomBytes(5000)), 1000, 1024)
    await expect(cat(store, root, { offset: 5001 })).rejects.toThrow(/Offset/)
    expect(await cat(store, root, { offset: 5000 })).toEqual([])
    const dir = new MemoryBlockstore()
    let dirRoot: CID | undefined
    for await (const entry of importer([{ path: 'd/f', content: new Uint8Array(3) }], dir, {
      wrapWithDirectory: true,
    })) {
      dirRoot = entry.cid
    }
    await expect(cat(dir, dirRoot as CID)).rejects.toThrow()
  })

  it('hands out bytes the caller may wipe: a second read of the same reader is not changed by it', async () => {
    // dag-pb leaves carry their bytes inline; the reader keeps decoded nodes for the next window,
    // so a piece handed on as the cached node's own array was wiped with the caller's copy
    // (an opener zeroes what it decrypted from): the next read of that node gave zeros
    for (const [size, chunk, links] of [
      [3_000, 256, 4],
      [40, 64, 4],
    ] as const) {
      const bytes = randomBytes(size)
      const { store, root } = await imported(bytes, chunk, links, false)
      const reader = unixfsReader(store as never)
      for (let round = 0; round < 2; round++) {
        const parts: Uint8Array[] = []
        for await (const part of reader.cat(root)) {
          parts.push(part.slice())
          part.fill(0)
        }
        expect(Buffer.concat(parts).equals(bytes)).toBe(true)
      }
    }
  })
})
