/**
 * A range of a UnixFS file read leaf by leaf, each leaf's bytes handed on as the blockstore gave
 * them (ADR 0060). The exporter (`ipfs-unixfs-exporter` 16) reads every child with `it-to-buffer`,
 * which copies even a block of one part: a 1 MiB copy per leaf of every fetch, and its garbage.
 * It also asks for the first leaf after the range (it takes the range's end as inclusive): one
 * leaf read twice per window of `windowedCat`. Here only the leaves the range covers are read,
 * `concurrency` at a time, in file order, and each is yielded as a view of its own bytes.
 * Files are UnixFS `file`/`raw` nodes (dag-pb) over raw or dag-pb children, as the importer
 * builds them; blocks come from helia's storage, so each was checked against its CID.
 */
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { NotUnixFSError, OverReadError, UnderReadError } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'
import { code as RAW_CODE } from 'multiformats/codecs/raw'

interface ReadOptions {
  signal?: AbortSignal
}

/** What a range is read through: a blockstore's `get`. */
export interface BlockReader {
  get(cid: CID, options?: ReadOptions): AsyncIterable<Uint8Array> | Iterable<Uint8Array>
}

/** A block as one array: a block of one part (every store here gives one) is not copied. */
export async function readBlock(
  blocks: BlockReader,
  cid: CID,
  options?: ReadOptions,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const part of blocks.get(cid, options)) parts.push(part)
  return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
}

/** What a file's range is read through: its leaves' bytes, and its nodes decoded (maybe kept). */
export interface FileBlocks extends BlockReader {
  /** The file node `cid` (`undefined`: a dag-pb node that is not a UnixFS file). */
  fileNode(cid: CID, options?: ReadOptions): Promise<FileNode | undefined>
}

/** A UnixFS file node: its inline bytes and its children with their sizes. */
export interface FileNode {
  data?: Uint8Array
  links: { cid: CID; size: number }[]
  /** The file's bytes under this node. */
  size: number
}

/** The file node in a dag-pb block, or `undefined` if it is not a UnixFS file. */
export function decodeFileNode(block: Uint8Array): FileNode | undefined {
  const node = dagPb.decode(block)
  if (node.Data == null) return undefined
  const unixfs = UnixFS.unmarshal(node.Data)
  if (unixfs.type !== 'file' && unixfs.type !== 'raw') return undefined
  if (node.Links.length !== unixfs.blockSizes.length) {
    throw new NotUnixFSError('Inconsistent block sizes and dag links')
  }
  return {
    ...(unixfs.data !== undefined && unixfs.data.byteLength > 0 ? { data: unixfs.data } : {}),
    links: node.Links.map((link, i) => ({
      cid: link.Hash,
      size: Number(unixfs.blockSizes[i] as bigint),
    })),
    size: Number(unixfs.fileSize()),
  }
}

/**
 * The deepest file DAG read: a balanced DAG of two links per node reaches 2^64 leaves, and the
 * importers' DAGs (balanced, 1 024 links; Kubo's trickle) are a few levels deep. A DAG of one
 * node per level made the reader nest a generator per level: 1 000 levels cost 0.4 s for one
 * byte, 10 000 overflowed the stack (an untyped `RangeError`), and whoever announces a CID can
 * have an executor fetch it before its header is checked (ADR 0090).
 */
export const MAX_FILE_DAG_DEPTH = 64

/** A piece of the range in file order: bytes at hand, or a leaf to read, at `at` in the file. */
type Piece = { at: number; bytes: Uint8Array } | { at: number; leaf: CID; size: number }

/** The pieces of `[start, end)` under `node` (whose bytes start at `at`), inner nodes read. */
async function* pieces(
  blocks: FileBlocks,
  node: FileNode,
  at: number,
  start: number,
  end: number,
  options?: ReadOptions,
  depth = 0,
): AsyncGenerator<Piece> {
  if (node.data) {
    // a copy: the node is kept for the next window (`node-cache.ts`) and its bytes are a view of
    // the stored block, while the caller owns what it is given (an opener wipes it after use).
    // Inline bytes are small (a dag-pb leaf, ≤ 1 MiB; raw leaves are handed on as read).
    yield { at, bytes: node.data.slice() }
    at += node.data.byteLength
  }
  for (const link of node.links) {
    const childEnd = at + link.size
    if (childEnd > start && at < end) {
      if (link.cid.code === RAW_CODE) {
        yield { at, leaf: link.cid, size: link.size }
      } else if (link.cid.code === dagPb.code) {
        if (depth >= MAX_FILE_DAG_DEPTH) {
          throw new NotUnixFSError(
            `${link.cid} is deeper than ${MAX_FILE_DAG_DEPTH} levels under the file's root`,
          )
        }
        const child = await blocks.fileNode(link.cid, options)
        if (!child) throw new NotUnixFSError(`${link.cid} is not a UnixFS file node`)
        // a node whose parent claims another size would shift every byte after it
        if (child.size !== link.size) throw inconsistentSize(link.cid, link.size, child.size)
        yield* pieces(blocks, child, at, start, end, options, depth + 1)
      } else {
        throw new NotUnixFSError(`Unsupported codec: ${link.cid.code}`)
      }
    }
    at = childEnd
    if (at >= end) return
  }
}

/** A child whose bytes are not the size its parent's `blockSizes` gives it. */
function inconsistentSize(cid: CID, claimed: number, actual: number): NotUnixFSError {
  return new NotUnixFSError(
    `${cid} holds ${actual} bytes of the file where its parent says ${claimed}: inconsistent block sizes`,
  )
}

/** The part of `bytes` (at `at` in the file) inside `[start, end)`, as a view. */
function clip(bytes: Uint8Array, at: number, start: number, end: number): Uint8Array {
  return bytes.subarray(Math.max(0, start - at), Math.max(0, Math.min(bytes.byteLength, end - at)))
}

/**
 * The bytes `[start, end)` of the file `root` (clamped to its size), in order, with up to
 * `concurrency` leaves read at once.
 * @throws {UnderReadError} if the file's nodes give fewer bytes than they say they hold.
 * @throws {NotUnixFSError} if a child's size is not the one its parent gives it (a DAG built to
 *   shift the bytes: each block still matches its CID), or the DAG is deeper than
 *   {@link MAX_FILE_DAG_DEPTH}.
 */
export async function* readFileRange(
  blocks: FileBlocks,
  root: FileNode,
  start: number,
  end: number,
  concurrency: number,
  options?: ReadOptions,
): AsyncGenerator<Uint8Array> {
  end = Math.min(end, root.size)
  if (end <= start) return
  // leaves being read, oldest first: reads run ahead of the one handed on
  const reading: { at: number; bytes: Promise<Uint8Array>; leaf?: CID; size?: number }[] = []
  let read = 0
  const handOn = async () => {
    const next = reading.shift() as (typeof reading)[number]
    const bytes = await next.bytes
    // a raw leaf's length is only known once read: it must be what its parent says
    if (next.leaf !== undefined && bytes.byteLength !== next.size) {
      throw inconsistentSize(next.leaf, next.size as number, bytes.byteLength)
    }
    const part = clip(bytes, next.at, start, end)
    read += part.byteLength
    if (read > end - start) throw new OverReadError('Read more bytes than the range holds')
    return part
  }
  for await (const piece of pieces(blocks, root, 0, start, end, options)) {
    if ('bytes' in piece) {
      reading.push({ at: piece.at, bytes: Promise.resolve(piece.bytes) })
    } else {
      const bytes = readBlock(blocks, piece.leaf, options)
      // read ahead; a failure is met when its turn comes
      bytes.catch(() => {})
      reading.push({ at: piece.at, bytes, leaf: piece.leaf, size: piece.size })
    }
    while (reading.length >= Math.max(1, concurrency)) {
      const part = await handOn()
      if (part.byteLength > 0) yield part
    }
  }
  while (reading.length > 0) {
    const part = await handOn()
    if (part.byteLength > 0) yield part
  }
  if (read < end - start) {
    throw new UnderReadError('Traversed entire DAG but did not read enough bytes')
  }
}
