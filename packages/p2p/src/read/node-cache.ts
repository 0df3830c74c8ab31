/**
 * The file's inner nodes kept for the reader. `windowedCat` reads a file window by window, and
 * the reader walks from the root for each window: every window read the root (and, past 1 GiB,
 * an inner node) again from the blockstore, a `has` and a file read each on a data folder, for
 * 16 windows of a 32 MiB file. Blocks are immutable and were checked against their CID when
 * they came in, so a copy is as good as the stored one. Only dag-pb nodes are kept (a few KiB
 * each, at most `NODE_CACHE_ENTRIES`); leaves are never kept (they are the bytes being read).
 */
import type { Blocks } from '@helia/interface'
import type { CID } from 'multiformats/cid'
import { decodeFileNode, type FileBlocks, type FileNode, readBlock } from './file-range.ts'

/** dag-pb's multicodec: the file's root and inner nodes (leaves are raw, 0x55). */
const DAG_PB = 0x70

/** Inner nodes kept: the root and the inner nodes a few windows share (≤ ~45 KiB each). */
export const NODE_CACHE_ENTRIES = 8

/** What the reader (and the exporter) reads through: `get` only. */
export type BlockGetter = Pick<Blocks, 'get'>

/** `blockstore` with its dag-pb nodes kept in memory once read (least recently used dropped). */
export function withNodeCache(blockstore: BlockGetter): BlockGetter {
  // a node being read is shared too: two windows asked at once both start from the root
  const nodes = new Map<string, Promise<Uint8Array>>()
  const read = async (cid: CID, options?: Parameters<Blocks['get']>[1]) => {
    const parts: Uint8Array[] = []
    for await (const part of blockstore.get(cid, options)) parts.push(part)
    return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
  }
  return {
    async *get(cid: CID, options?: Parameters<Blocks['get']>[1]) {
      if (cid.code !== DAG_PB) {
        yield* blockstore.get(cid, options)
        return
      }
      const key = cid.toString()
      let node = nodes.get(key)
      if (node) {
        nodes.delete(key)
      } else {
        node = read(cid, options)
        // a failed read is not kept (the next reader tries again)
        node.catch(() => nodes.delete(key))
      }
      nodes.set(key, node)
      if (nodes.size > NODE_CACHE_ENTRIES) nodes.delete(nodes.keys().next().value as string)
      yield await node
    },
  }
}

/**
 * `blocks` with its file nodes decoded once: the reader walks from the root for every window,
 * and decoding a root of 100 links took ~1 ms (9 ms for 1 024 links, a 1 GiB capsule: a second
 * per GiB fetched, 128 windows), 0.7 % of a 100 MiB fetch's event loop (ADR 0061). Decoded
 * nodes are only read. At most `NODE_CACHE_ENTRIES`, least recently used dropped.
 */
export function withFileNodeCache(blocks: BlockGetter): FileBlocks {
  const decoded = new Map<string, Promise<FileNode | undefined>>()
  return {
    get: (cid, options) => blocks.get(cid, options),
    fileNode(cid, options) {
      const key = cid.toString()
      let node = decoded.get(key)
      if (node) {
        decoded.delete(key)
      } else {
        const read = readBlock(blocks, cid, options).then(decodeFileNode)
        // a failed read is not kept (the next reader tries again)
        read.catch(() => {
          if (decoded.get(key) === read) decoded.delete(key)
        })
        node = read
      }
      decoded.set(key, node)
      if (decoded.size > NODE_CACHE_ENTRIES) decoded.delete(decoded.keys().next().value as string)
      return node
    },
  }
}
