/**
 * `sha256FilePieces`: the SHA-256 of every fixed-size piece of a file, on every core, read
 * straight into the lanes' own buffers (`lanes.ts`, op `hash`): no piece is copied into the
 * calling thread. What an IPFS add of a sealed capsule needs (its 1 MiB raw leaves' digests).
 */
import { open } from 'node:fs/promises'
import { InvalidArgumentError } from '../errors.ts'
import { fileLimits } from './commit-and-seal.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'

/** One piece of the file: where it is and its SHA-256. */
export interface FilePieceDigest {
  offset: number
  length: number
  digest: Uint8Array
}

/**
 * Yields the SHA-256 of each `pieceSize`-byte piece of the file at `path`, in file order (the
 * last piece may be shorter; an empty file has no piece). The next segment of 8 192 pieces is
 * hashed while the caller consumes the current one, so a slow consumer holds at most two
 * segments of digests, whatever the file's size.
 * @throws {InvalidArgumentError} for a bad `pieceSize`, a path that is not a regular file, or a
 *   file that shrinks while it is read.
 * @throws Node's file system errors (ENOENT, EACCES, …) unchanged.
 * @example
 * ```ts
 * for await (const { offset, digest } of sha256FilePieces('capsule.bin', { pieceSize: 1 << 20 }))
 *   console.log(offset, digest)
 * ```
 */
export async function* sha256FilePieces(
  path: string,
  options: FileThreadsOption & { pieceSize: number },
): AsyncGenerator<FilePieceDigest> {
  const { pieceSize } = options
  if (!Number.isSafeInteger(pieceSize) || pieceSize < 1) {
    throw new InvalidArgumentError('pieceSize must be a positive integer', {
      details: { pieceSize },
    })
  }
  const file = await open(path, 'r')
  // A failed segment's error is the generator's; a segment nobody awaits is still awaited.
  let ahead: Promise<FilePieceDigest[]> | undefined
  try {
    const info = await file.stat()
    if (!info.isFile()) {
      throw new InvalidArgumentError('path must be a regular file', { details: { path } })
    }
    const size = info.size
    const SEGMENT_PIECES = fileLimits.hashSegmentPieces
    const pieces = Math.ceil(size / pieceSize)
    const lanes = Math.max(1, lanesFor(options.threads, size))
    const segment = (first: number): Promise<FilePieceDigest[]> => {
      const count = Math.min(SEGMENT_PIECES, pieces - first)
      const inBase = first * pieceSize
      const bytes = Math.min(size - inBase, count * pieceSize)
      const out: FilePieceDigest[] = []
      return runLanes({
        op: 'hash',
        inFd: file.fd,
        inBase,
        chunkSize: pieceSize,
        plaintextSize: bytes,
        chunkCount: count,
        lanes,
        onLeaf: (digest) => {
          const offset = inBase + out.length * pieceSize
          out.push({ offset, length: Math.min(pieceSize, size - offset), digest })
        },
      }).then(
        () => out,
        (err: unknown) => {
          if (!(err instanceof LaneChunkFailure)) throw err
          throw new InvalidArgumentError('the file shrank while it was hashed', {
            details: { path, piece: first + err.chunk },
          })
        },
      )
    }
    for (let first = 0; first < pieces; first += SEGMENT_PIECES) {
      const current = ahead ?? segment(first)
      ahead = undefined
      const digests = await current
      if (first + SEGMENT_PIECES < pieces) ahead = segment(first + SEGMENT_PIECES)
      yield* digests
    }
  } finally {
    await ahead?.catch(() => {})
    await file.close()
  }
}
