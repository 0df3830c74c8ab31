/**
 * The capsule import: bytes → UnixFS blocks in a blockstore → root CID, with the profile of
 * {@link capsuleImportOptions}, in bounded memory. `ipfs-unixfs-importer` lays out the DAG (so
 * the CIDs are the stock tool's); the chunks and the leaf writes are ours: chunks are read into
 * a fixed pool of buffers, each leaf is hashed and written, and its buffer goes back to the
 * pool once the blockstore holds it. At most `pool.count` chunks exist at any time, whatever
 * the capsule's size.
 */
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { CapsuleStoreError } from '../errors.ts'
import type { FileReference } from '../filestore/file-reference.ts'
import type { FilestoreBlockstore } from '../filestore/filestore-blockstore.ts'
import type { PackEntry } from '../filestore/reference-pack.ts'
import { type BufferPool, createBufferPool } from './buffer-pool.ts'
import { type CapsuleSource, capsuleChunks, type KnownPiece } from './chunks.ts'
import { sha256Leaf } from './hash-leaf.ts'
import { capsuleImportOptions, UNIXFS_CHUNK_SIZE } from './profile.ts'
import { referenceLeaves } from './reference-leaves.ts'

/** Leaf blocks written at once. */
export const IMPORT_WRITE_CONCURRENCY = 4

export interface ImportCapsuleOptions {
  /** Called with the number of bytes stored so far. */
  onProgress?: (bytes: number) => void
  signal?: AbortSignal
  /**
   * The chunk buffers (tests pass one to watch it). Default: a fresh pool of
   * `2 × IMPORT_WRITE_CONCURRENCY + 2` buffers of 1 MiB. It must hold more buffers than
   * {@link IMPORT_WRITE_CONCURRENCY} (the importer gathers that many chunks before writing).
   */
  pool?: BufferPool
  /**
   * With a `{ path }` source and a sink that keeps references (`putReference`, the node's
   * on-disk {@link FilestoreBlockstore}): store each leaf as a reference to its bytes in the
   * file instead of a copy. The file must then stay as it is (a changed file's blocks are
   * refused on read). Default `false`.
   */
  referenceFile?: boolean
}

/** The blockstore side the import needs (helia's blockstore, `FsBlockstore`, ...). */
export interface CapsuleBlockSink {
  put(cid: CID, bytes: Uint8Array, options?: { signal?: AbortSignal }): unknown
  /** Keeps the block as a reference to a file's bytes (see `referenceFile`). */
  putReference?(cid: CID, ref: FileReference, options?: { signal?: AbortSignal }): unknown
  /**
   * Keeps every leaf of the file at `path` as a reference at once, once all are hashed (one
   * pack, ADR 0102); used instead of `putReference` when the sink has it.
   */
  putReferences?(
    path: string,
    stamp: FileReference['stamp'],
    entries: readonly PackEntry[],
    options?: { signal?: AbortSignal },
  ): unknown
}

const NO_BLOCK = new Uint8Array(0)

/** The file to reference and the sink's `putReference`, when the options ask for it and both allow it. */
function referencedFile(
  source: CapsuleSource,
  blockstore: CapsuleBlockSink,
  options: ImportCapsuleOptions,
) {
  const { path, referencePath, pieces } = source as {
    path?: unknown
    referencePath?: unknown
    pieces?: unknown
  }
  // a stream (a file's ReadStream has a `path` too) is copied: only `{ path }` is a file
  const isStream = typeof source === 'object' && source !== null && Symbol.asyncIterator in source
  if (options.referenceFile !== true || typeof path !== 'string' || isStream) return undefined
  if (referencePath !== undefined && typeof referencePath !== 'string') {
    throw new CapsuleStoreError('referencePath must be a path', {
      details: { type: typeof referencePath },
    })
  }
  const { putReference, putReferences } = blockstore
  if (pieces !== undefined && !Array.isArray(pieces)) {
    throw new CapsuleStoreError('pieces must be an array', { details: { type: typeof pieces } })
  }
  // read at `path`; the references name `referencePath`, where the file will be renamed
  const named = {
    readPath: path,
    path: resolve(referencePath ?? path),
    pieces: pieces as readonly KnownPiece[] | undefined,
  }
  if (putReferences) {
    // gathered as the leaves are hashed (a digest, an offset and a length each), written as one
    // pack at the end
    const entries: PackEntry[] = []
    return {
      ...named,
      sink: (cid: CID, ref: FileReference) => {
        entries.push({ digest: cid.multihash.digest, offset: ref.offset, length: ref.length })
      },
      finish: (stamp: FileReference['stamp'], options: { signal?: AbortSignal }) =>
        putReferences.call(blockstore, named.path, stamp, entries, options),
    }
  }
  if (putReference) {
    return { ...named, sink: putReference.bind(blockstore), finish: () => undefined }
  }
  throw new CapsuleStoreError('This blockstore cannot keep file references', {
    hint: "Open the node's on-disk blockstore (openFsCapsuleImporter), or drop referenceFile.",
  })
}

async function fileStamp(path: string): Promise<{ size: number; mtimeMs: number }> {
  const info = await stat(path)
  return { size: info.size, mtimeMs: info.mtimeMs }
}

/**
 * Stores `source` as UnixFS blocks in `blockstore` and returns the root CID.
 * @throws {CapsuleStoreError} for an unsupported source, an unreadable file or a failed write.
 * @example
 * ```ts
 * const cid = await importCapsule({ path: 'photo.capsule' }, helia.blockstore)
 * ```
 */
export async function importCapsule(
  source: CapsuleSource,
  blockstore: CapsuleBlockSink,
  options: ImportCapsuleOptions = {},
): Promise<CID> {
  const pool = options.pool ?? createBufferPool(2 * IMPORT_WRITE_CONCURRENCY + 2, UNIXFS_CHUNK_SIZE)
  const signal = options.signal
  let stored = 0
  const referenced = referencedFile(source, blockstore, options)
  // the file's size and mtime as its leaves are hashed: a read trusts a leaf while they hold
  let stamp: FileReference['stamp']
  // Hash and write one leaf, then give its buffer back: the importer keeps only CIDs and sizes.
  const bufferImporter = (file: { content: AsyncIterable<Uint8Array> }) =>
    (async function* () {
      // the chunks come in file order: each one's offset is known as it is read
      let offset = 0
      for await (const chunk of file.content) {
        const at = offset
        offset += chunk.byteLength
        yield async () => {
          try {
            const cid = CID.createV1(raw.code, await sha256Leaf(chunk))
            const opts = signal ? { signal } : {}
            if (referenced) {
              await referenced.sink(
                cid,
                {
                  path: referenced.path,
                  offset: at,
                  length: chunk.byteLength,
                  ...(stamp ? { stamp } : {}),
                },
                opts,
              )
            } else {
              await blockstore.put(cid, chunk, opts)
            }
            stored += chunk.byteLength
            options.onProgress?.(stored)
            return { cid, size: BigInt(chunk.byteLength), block: NO_BLOCK }
          } finally {
            pool.release(chunk)
          }
        }
      }
    })()
  try {
    if (referenced) stamp = await fileStamp(referenced.readPath)
    // A referenced file's leaves are hashed where they are read (capsule-core's lanes); the
    // importer's content then goes unread. An empty file is one empty leaf: the copying path.
    const byReference = referenced !== undefined && (stamp?.size ?? 0) > 0
    const chunks = byReference ? [] : capsuleChunks(source, pool, signal)
    const leaves = byReference
      ? referenceLeaves(
          referenced,
          () => stamp,
          (n) => {
            stored += n
            options.onProgress?.(stored)
          },
          signal,
        )
      : bufferImporter
    let root: CID | undefined
    for await (const entry of importer([{ content: chunks }], blockstore as never, {
      ...capsuleImportOptions(),
      // The chunks are already cut to size: pass them through.
      chunker: (s) => s,
      bufferImporter: leaves as never,
      blockWriteConcurrency: IMPORT_WRITE_CONCURRENCY,
      wrapWithDirectory: false,
      ...(signal ? { signal } : {}),
    })) {
      root = entry.cid
    }
    if (!root) throw new CapsuleStoreError('The import gave no root', {})
    if (referenced) {
      const after = await fileStamp(referenced.readPath)
      if (after.size !== stamp?.size || after.mtimeMs !== stamp.mtimeMs) {
        throw new CapsuleStoreError('The file changed while it was added', {
          details: { file: referenced.readPath },
          hint: 'Add it again once nothing writes to it.',
        })
      }
      await referenced.finish(stamp, signal ? { signal } : {})
    }
    return root
  } catch (cause) {
    if (cause instanceof CapsuleStoreError) throw cause
    throw new CapsuleStoreError('Cannot store the capsule', {
      cause,
      details: { reason: (cause as Error)?.name },
      ...(signal?.aborted ? { hint: 'The import was aborted.' } : {}),
    })
  }
}
