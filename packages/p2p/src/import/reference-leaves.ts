/**
 * The leaves of a file kept as references (`referenceFile`): each 1 MiB leaf's SHA-256 comes
 * from capsule-core's lanes, which read the file into their own buffers on every core
 * (`sha256FilePieces`); this thread only turns digests into CIDs and reference entries. No
 * leaf's bytes cross into the calling thread: WebCrypto's `digest` copied each one there first,
 * which was most of a loaded seal's add (ADR 0045).
 */
import { sha256FilePieces } from '@digicap/capsule-core'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import type { FileReference } from '../filestore/file-reference.ts'
import { UNIXFS_CHUNK_SIZE } from './profile.ts'

const NO_BLOCK = new Uint8Array(0)

/** Where the references point and how they are stored. */
export interface ReferenceTarget {
  /** The file read (maybe a temp file about to be renamed). */
  readPath: string
  /** The absolute path the references name. */
  path: string
  sink: (cid: CID, ref: FileReference, options?: { signal?: AbortSignal }) => unknown
}

/**
 * A `bufferImporter` for `ipfs-unixfs-importer` that ignores the content it is given and yields
 * one leaf per 1 MiB piece of `target.readPath` (the file must not be empty).
 */
export function referenceLeaves(
  target: ReferenceTarget,
  stamp: () => FileReference['stamp'],
  onStored: (bytes: number) => void,
  signal?: AbortSignal,
) {
  return () =>
    (async function* () {
      for await (const { offset, length, digest } of sha256FilePieces(target.readPath, {
        pieceSize: UNIXFS_CHUNK_SIZE,
      })) {
        signal?.throwIfAborted()
        const cid = CID.createV1(raw.code, create(sha256.code, digest))
        yield async () => {
          const s = stamp()
          await target.sink(
            cid,
            { path: target.path, offset, length, ...(s ? { stamp: s } : {}) },
            signal ? { signal } : {},
          )
          onStored(length)
          return { cid, size: BigInt(length), block: NO_BLOCK }
        }
      }
    })()
}
