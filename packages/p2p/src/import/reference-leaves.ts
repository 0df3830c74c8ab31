/**
 * The leaves of a file kept as references (`referenceFile`): each 1 MiB leaf's SHA-256 comes
 * from capsule-core's lanes, which read the file into their own buffers on every core
 * (`sha256FilePieces`); this thread only turns digests into CIDs and reference entries. No
 * leaf's bytes cross into the calling thread: WebCrypto's `digest` copied each one there first,
 * which was most of a loaded seal's add (ADR 0045).
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { sha256FilePieces } from '@digicap/capsule-core'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { CapsuleStoreError } from '../errors.ts'
import type { FileReference } from '../filestore/file-reference.ts'
import type { KnownPiece } from './chunks.ts'
import { UNIXFS_CHUNK_SIZE } from './profile.ts'

const NO_BLOCK = new Uint8Array(0)

/** Where the references point and how they are stored. */
export interface ReferenceTarget {
  /** The file read (maybe a temp file about to be renamed). */
  readPath: string
  /** The absolute path the references name. */
  path: string
  sink: (cid: CID, ref: FileReference, options?: { signal?: AbortSignal }) => unknown
  /** The digests of the file's last pieces, when its writer has them (`CapsuleSource`). */
  pieces?: readonly KnownPiece[] | undefined
}

/**
 * Where the known pieces start, once checked to be exactly the file's 1 MiB leaves from a 1 MiB
 * offset to its end (`size`), each a 32-byte digest. Anything else is the caller's bug: refused,
 * never trusted in part.
 */
export function knownPiecesStart(pieces: readonly KnownPiece[], size: number): number {
  const first = pieces[0]?.offset ?? size
  let expect = first
  const fits =
    first % UNIXFS_CHUNK_SIZE === 0 &&
    pieces.every((p) => {
      const ok =
        p.offset === expect &&
        p.length === Math.min(UNIXFS_CHUNK_SIZE, size - p.offset) &&
        p.length > 0 &&
        p.digest instanceof Uint8Array &&
        p.digest.length === 32
      expect += p.length
      return ok
    }) &&
    expect === size
  if (!fits) {
    throw new CapsuleStoreError('The known pieces are not the file’s last 1 MiB leaves', {
      details: { first, pieces: pieces.length, size },
      hint: 'Give the digests of every 1 MiB piece from a 1 MiB offset to the end of the file, in order, or none.',
    })
  }
  return first
}

/**
 * The last known piece read and hashed: one 1 MiB leaf of the file against the writer's word,
 * so a writer whose offsets or digests are wrong is refused here, not registered under a CID
 * whose leaves this node would serve unchecked and every fetcher would refuse.
 */
async function checkLastPiece(path: string, known: readonly KnownPiece[]): Promise<void> {
  const last = known[known.length - 1] as KnownPiece
  const bytes = new Uint8Array(last.length)
  const file = await open(path, 'r')
  try {
    let got = 0
    while (got < bytes.length) {
      const { bytesRead } = await file.read(bytes, got, bytes.length - got, last.offset + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
  } finally {
    await file.close()
  }
  const digest = createHash('sha256').update(bytes).digest()
  if (!digest.equals(last.digest)) {
    throw new CapsuleStoreError('A known piece is not the file’s bytes', {
      details: { offset: last.offset, length: last.length },
      hint: 'The writer handed digests of other bytes: add the file without pieces.',
    })
  }
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
      const size = stamp()?.size
      const known = target.pieces && size !== undefined ? target.pieces : []
      const hashedUpTo = known.length > 0 ? knownPiecesStart(known, size as number) : undefined
      const leaves = async function* () {
        // the pieces before the known ones are read and hashed; the known ones are taken as given
        yield* sha256FilePieces(target.readPath, {
          pieceSize: UNIXFS_CHUNK_SIZE,
          ...(hashedUpTo === undefined ? {} : { length: hashedUpTo }),
        })
        if (known.length > 0) await checkLastPiece(target.readPath, known)
        yield* known
      }
      for await (const { offset, length, digest } of leaves()) {
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
