/**
 * The capsule's bytes cut into fixed-size chunks, read into the pool's buffers: a file is
 * read straight into them (no intermediate stream buffers), a stream is copied into them, a
 * byte array is cut in place. Each chunk is `size` bytes except the last; an empty source is
 * one empty chunk (as the UnixFS importer's fixed-size chunker gives).
 */
import { open } from 'node:fs/promises'
import { CapsuleStoreError } from '../errors.ts'
import type { BufferPool } from './buffer-pool.ts'

/**
 * What an import reads: bytes, a byte stream, or the path of a local file (streamed).
 * `referencePath`: where the file will be once renamed (a sealer adds its capsule from the temp
 * file while it is flushed, then renames it); a store that keeps file references names that
 * path, and any other store ignores it. Same file system, same file: a rename keeps its size
 * and mtime, which the references are stamped with.
 * `pieces`: the SHA-256 of the file's last 1 MiB pieces, from a 1 MiB offset to its end, in
 * order, when the writer hashed them anyway (a version 2 capsule's bodies, which its seal hashes
 * for the commitment: capsule-core `commitAndSealFile`'s `onWritten`). A store that keeps file
 * references takes them as those leaves' digests and hashes only the pieces before them; any
 * other store reads and hashes every leaf as usual.
 */
export type CapsuleSource =
  | Uint8Array
  | AsyncIterable<Uint8Array>
  | { path: string; referencePath?: string; pieces?: readonly KnownPiece[] }

/** One piece of a file whose digest the writer already has: where it is and its SHA-256. */
export interface KnownPiece {
  offset: number
  length: number
  digest: Uint8Array
}

const EMPTY = new Uint8Array(0)

/** Reads `path` into pool buffers, one full chunk at a time. */
async function* fileChunks(
  path: string,
  pool: BufferPool,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const file = await open(path, 'r').catch((cause) => {
    throw new CapsuleStoreError('Cannot read the file to store', {
      cause,
      details: { file: path, reason: (cause as NodeJS.ErrnoException).code },
    })
  })
  try {
    let emitted = false
    for (;;) {
      signal?.throwIfAborted()
      const buf = pool.acquire()
      let filled = 0
      while (filled < buf.byteLength) {
        const { bytesRead } = await file.read(buf, filled, buf.byteLength - filled, null)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      if (filled === 0 && emitted) {
        pool.release(buf)
        return
      }
      emitted = true
      yield buf.subarray(0, filled)
      if (filled < buf.byteLength) return
    }
  } finally {
    await file.close()
  }
}

/** Copies a stream's pieces, whatever their sizes, into full pool buffers. */
async function* streamChunks(
  source: AsyncIterable<Uint8Array>,
  pool: BufferPool,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  let buf: Uint8Array | undefined
  let filled = 0
  let emitted = false
  for await (const piece of source) {
    signal?.throwIfAborted()
    if (!(piece instanceof Uint8Array)) {
      throw new CapsuleStoreError('The stream to store yielded something other than bytes', {
        details: { type: typeof piece },
      })
    }
    let offset = 0
    while (offset < piece.byteLength) {
      buf ??= pool.acquire()
      const n = Math.min(buf.byteLength - filled, piece.byteLength - offset)
      buf.set(piece.subarray(offset, offset + n), filled)
      filled += n
      offset += n
      if (filled === buf.byteLength) {
        emitted = true
        yield buf
        buf = undefined
        filled = 0
      }
    }
  }
  if (buf) yield buf.subarray(0, filled)
  else if (!emitted) yield EMPTY
}

/** A byte array cut into views of itself (the caller already holds it in memory). */
function* arrayChunks(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  if (bytes.byteLength === 0) yield EMPTY
  for (let off = 0; off < bytes.byteLength; off += size) yield bytes.subarray(off, off + size)
}

/**
 * The chunks of `source`, `pool.bufferSize` bytes each.
 * @throws {CapsuleStoreError} for a source of another type, or a file that cannot be read.
 */
export function capsuleChunks(
  source: CapsuleSource,
  pool: BufferPool,
  signal?: AbortSignal,
): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  if (source instanceof Uint8Array) return arrayChunks(source, pool.bufferSize)
  if (typeof source === 'object' && source !== null) {
    // a stream first: a file's ReadStream has a `path` too, but its bytes are what it yields
    // (maybe a range of the file, maybe a file removed once it has been read)
    if (Symbol.asyncIterator in source) {
      return streamChunks(source as AsyncIterable<Uint8Array>, pool, signal)
    }
    if (typeof (source as { path?: unknown }).path === 'string') {
      return fileChunks((source as { path: string }).path, pool, signal)
    }
  }
  throw new CapsuleStoreError('Unsupported source for put', {
    details: { type: typeof source },
    hint: 'Pass a Uint8Array, an AsyncIterable<Uint8Array> or { path }.',
  })
}
