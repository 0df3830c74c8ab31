/**
 * `cat` of a UnixFS file, as `@helia/unixfs`'s `cat` does for a CID without a path.
 * `@helia/unixfs`'s entry (and its `cat` file, through its path resolver) loads the importer,
 * HAMT sharding and globbing: a process that only fetches (a one-shot `executor-node run`) has
 * no use for them (ADR 0042). A file's bytes are read by `file-range.ts` (each leaf handed on as
 * stored, ADR 0060); anything else (a raw block as the root, a directory) by the exporter.
 */
import type { Blocks } from '@helia/interface'
import type { UnixFS } from '@helia/unixfs'
import { NoContentError, NotAFileError } from '@helia/unixfs/errors'
import * as dagPb from '@ipld/dag-pb'
import { exporter, InvalidParametersError } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'
import { readFileRange } from './file-range.ts'
import { withFileNodeCache, withNodeCache } from './node-cache.ts'

/** The one part of `UnixFS` a fetch reads through (`windowedCat`). */
export type UnixFsReader = Pick<UnixFS, 'cat'>

/** `cat`'s options as `windowedCat` gives them (the exporter's names). */
interface CatOptions {
  offset?: number
  length?: number
  blockReadConcurrency?: number
  signal?: AbortSignal
}

/** The range `[start, end)` asked of a file of `size` bytes (the exporter's rules). */
function rangeOf(size: number, options: CatOptions): { start: number; end: number } {
  const start = Number(options.offset ?? 0)
  const length = options.length === undefined ? size : Number(options.length)
  if (start < 0) throw new InvalidParametersError('Offset must be greater than or equal to 0')
  if (start > size) throw new InvalidParametersError('Offset must be less than the file size')
  if (length < 0) throw new InvalidParametersError('Length must be greater than or equal to 0')
  return { start, end: Math.min(size, start + length) }
}

/**
 * A reader of the files in `blockstore` (helia's: fetches missing blocks over bitswap), keeping
 * the files' inner nodes it read (`node-cache.ts`: each window walks from the root again).
 */
export function unixfsReader(blockstore: Blocks): UnixFsReader {
  const nodes = withNodeCache(blockstore)
  const files = withFileNodeCache(nodes)
  return {
    async *cat(cid: CID, options: CatOptions = {}) {
      if (cid.code === dagPb.code) {
        const file = await files.fileNode(cid, options)
        if (file) {
          const { start, end } = rangeOf(file.size, options)
          const concurrency = options.blockReadConcurrency ?? Number.POSITIVE_INFINITY
          yield* readFileRange(files, file, start, end, concurrency, options)
          return
        }
      }
      const entry = await exporter(cid, nodes as Blocks, options)
      if (entry.type !== 'file' && entry.type !== 'raw') throw new NotAFileError()
      if (entry.content == null) throw new NoContentError()
      yield* entry.content(options)
    },
  } as UnixFsReader
}
