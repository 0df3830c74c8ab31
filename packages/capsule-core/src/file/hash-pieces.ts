/**
 * `sha256FilePieces`: the SHA-256 of every fixed-size piece of a file, on every core, read
 * straight into the lanes' own buffers (`lanes.ts`, op `hash`): no piece is copied into the
 * calling thread. What an IPFS add of a sealed capsule needs (its 1 MiB raw leaves' digests).
 */
import { InvalidArgumentError } from '../errors.ts'
import { openRegularFile } from './io.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { fileLimits } from './limits.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'

/** One piece of the file: where it is and its SHA-256. */
export interface FilePieceDigest {
  offset: number
  length: number
  digest: Uint8Array
}

/**
 * Yields the SHA-256 of each `pieceSize`-byte piece of the file at `path`, in file order (the
 * last piece may be shorter; an empty file has no piece), each as soon as the lanes give it.
 * The next segment of 8 192 pieces is hashed while the caller consumes the end of the current
 * one, so a slow consumer holds at most two segments of digests, whatever the file's size.
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
  options: FileThreadsOption & {
    pieceSize: number
    /** Hash only the file's first `length` bytes (default: all of it; at most its size). */
    length?: number
  },
): AsyncGenerator<FilePieceDigest> {
  const { pieceSize } = options
  if (!Number.isSafeInteger(pieceSize) || pieceSize < 1) {
    throw new InvalidArgumentError('pieceSize must be a positive integer', {
      details: { pieceSize },
    })
  }
  const file = await openRegularFile(path, 'path', 'Hash a stream piece by piece instead.')
  // The segment being consumed and the next one: both are awaited before the file closes
  // (a lane still reading it would meet a closed descriptor), and a failure is the generator's.
  let current: Segment | undefined
  let ahead: Segment | undefined
  try {
    const info = await file.stat()
    if (!info.isFile()) {
      throw new InvalidArgumentError('path must be a regular file', { details: { path } })
    }
    const size = options.length ?? info.size
    if (!Number.isSafeInteger(size) || size < 0 || size > info.size) {
      throw new InvalidArgumentError('length must be a whole number of bytes within the file', {
        details: { length: options.length, size: info.size },
      })
    }
    const SEGMENT_PIECES = fileLimits.hashSegmentPieces
    const pieces = Math.ceil(size / pieceSize)
    const lanes = Math.max(1, lanesFor(options.threads, size))
    const segment = (first: number): Segment => {
      const count = Math.min(SEGMENT_PIECES, pieces - first)
      const inBase = first * pieceSize
      const bytes = Math.min(size - inBase, count * pieceSize)
      const seg: Segment = {
        out: [],
        hashed: false,
        finished: false,
        wake: undefined,
        done: Promise.resolve(),
      }
      const nudge = () => {
        const w = seg.wake
        seg.wake = undefined
        w?.()
      }
      seg.done = runLanes({
        op: 'hash',
        inFd: file.fd,
        inBase,
        chunkSize: pieceSize,
        plaintextSize: bytes,
        chunkCount: count,
        lanes,
        keepWorkers: options.keepWorkers,
        onLeaf: (digest) => {
          const offset = inBase + seg.out.length * pieceSize
          seg.out.push({ offset, length: Math.min(pieceSize, size - offset), digest })
          nudge()
        },
      })
        .then(
          () => {
            seg.hashed = true
          },
          (err: unknown) => {
            if (!(err instanceof LaneChunkFailure)) throw err
            throw new InvalidArgumentError('the file shrank while it was hashed', {
              details: { path, piece: first + err.chunk },
            })
          },
        )
        .finally(() => {
          seg.finished = true
          nudge()
        })
      // Awaited below or in `finally`: never an unhandled rejection meanwhile.
      seg.done.catch(() => {})
      return seg
    }
    for (let first = 0; first < pieces; first += SEGMENT_PIECES) {
      const seg = ahead ?? segment(first)
      current = seg
      ahead = undefined
      // Digests are handed on as the lanes give them (in file order), not once the whole
      // segment is hashed: the caller's work on them (an add's entries) overlaps the hashing.
      let next = 0
      for (;;) {
        // The next segment is hashed while the caller consumes the end of this one.
        if (seg.hashed && !ahead && first + SEGMENT_PIECES < pieces)
          ahead = segment(first + SEGMENT_PIECES)
        while (next < seg.out.length) {
          const piece = seg.out[next] as FilePieceDigest
          next++
          yield piece
        }
        if (seg.finished) break
        await new Promise<void>((resolve) => {
          seg.wake = resolve
          if (seg.finished || next < seg.out.length) nudgeNow(seg)
        })
      }
      await seg.done
      current = undefined
    }
  } finally {
    await current?.done.catch(() => {})
    await ahead?.done.catch(() => {})
    await file.close()
  }
}

/** One run of the lanes over up to 8 192 pieces, and the digests it gave so far. */
interface Segment {
  out: FilePieceDigest[]
  /** Every piece hashed (the lanes are done). */
  hashed: boolean
  /** The lanes are done, or failed. */
  finished: boolean
  wake: (() => void) | undefined
  done: Promise<void>
}

function nudgeNow(seg: Segment): void {
  const w = seg.wake
  seg.wake = undefined
  w?.()
}
