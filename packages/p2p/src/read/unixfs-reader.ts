/**
 * `cat` of a UnixFS file straight through the exporter, as `@helia/unixfs`'s `cat` does for a
 * CID without a path. `@helia/unixfs`'s entry (and its `cat` file, through its path resolver)
 * loads the importer, HAMT sharding and globbing: a process that only fetches (a one-shot
 * `executor-node run`) has no use for them (ADR 0042).
 */
import type { Blocks } from '@helia/interface'
import type { UnixFS } from '@helia/unixfs'
import { NoContentError, NotAFileError } from '@helia/unixfs/errors'
import { exporter } from 'ipfs-unixfs-exporter'
import { withNodeCache } from './node-cache.ts'

/** The one part of `UnixFS` a fetch reads through (`windowedCat`). */
export type UnixFsReader = Pick<UnixFS, 'cat'>

/**
 * A reader of the files in `blockstore` (helia's: fetches missing blocks over bitswap), keeping
 * the files' inner nodes it read (`node-cache.ts`: each window walks from the root again).
 */
export function unixfsReader(blockstore: Blocks): UnixFsReader {
  const nodes = withNodeCache(blockstore)
  return {
    async *cat(cid, options = {}) {
      const entry = await exporter(cid, nodes as Blocks, options)
      if (entry.type !== 'file' && entry.type !== 'raw') throw new NotAFileError()
      if (entry.content == null) throw new NoContentError()
      yield* entry.content(options)
    },
  }
}
