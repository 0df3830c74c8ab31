/** `commitPlaintextFile`: the plaintext commitment of a file (the first pass of `sealFile`). */
import type { FileHandle } from 'node:fs/promises'
import { InvalidArgumentError } from '../errors.ts'
import { DEFAULT_CHUNK_SIZE } from '../header.ts'
import {
  createCommitmentCombiner,
  createPlaintextCommitment,
  deriveCommitmentKey,
  type PlaintextCommitment,
  type PlaintextCommitter,
} from '../keys.ts'
import { chunkCountFor } from '../parse.ts'
import { openRegularFile, readFully, settled } from './io.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'
/**
 * Computes the plaintext commitment of a file (the first of the two passes a sealed file
 * needs; see SPEC.md §4.3). Files of 32 MiB or more are hashed on every core (each lane
 * hashes whole chunks); smaller ones on one thread that overlaps the next read with hashing.
 *
 * @param options.chunkSize - the chunk size the capsule will use; default {@link DEFAULT_CHUNK_SIZE}.
 * @param options.threads - see {@link FileThreadsOption}.
 * @throws {InvalidArgumentError} if the file changes size while it is hashed.
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * const header = createCapsuleHeader({ ...fields, capsuleId, dataKey, commitment })
 * ```
 */
export async function commitPlaintextFile(
  path: string,
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  options: FileThreadsOption & {
    chunkSize?: number
    onProgress?: (plaintextBytes: number) => void
  } = {},
): Promise<PlaintextCommitment> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
  // Validates the key, id and chunk size before any file is touched.
  const c = createPlaintextCommitment(dataKey, capsuleId, chunkSize)
  const fh = await openRegularFile(
    path,
    'path',
    'Commit to a stream with createPlaintextCommitment.',
  )
  try {
    const { size } = await fh.stat()
    const lanes = lanesFor(options.threads, size)
    if (lanes === 0) return await commitSequential(fh, c, options.onProgress)
    const combiner = createCommitmentCombiner(deriveCommitmentKey(dataKey, capsuleId))
    await runLanes({
      op: 'hash',
      inFd: fh.fd,
      inBase: 0,
      chunkSize,
      plaintextSize: size,
      chunkCount: chunkCountFor(size, chunkSize),
      lanes,
      keepWorkers: options.keepWorkers,
      onLeaf: (leaf) => combiner.add(leaf),
      onChunks: (done) => options.onProgress?.(Math.min(size, done * chunkSize)),
    }).catch((err: unknown) => {
      if (!(err instanceof LaneChunkFailure)) throw err
      throw hashedFileChanged(err.chunk)
    })
    if ((await fh.stat()).size !== size) throw hashedFileChanged()
    return { plaintextSize: size, plaintextCommitment: combiner.digest(), chunkSize }
  } finally {
    await fh.close()
  }
}

function hashedFileChanged(chunk?: number): InvalidArgumentError {
  return new InvalidArgumentError('input file changed while it was hashed', {
    details: chunk === undefined ? {} : { chunk },
  })
}

/** One thread: 1 MiB reads into two reused buffers, the next read running during hashing. */
async function commitSequential(
  fh: FileHandle,
  c: PlaintextCommitter,
  onProgress: ((plaintextBytes: number) => void) | undefined,
): Promise<PlaintextCommitment> {
  const piece = 1024 * 1024
  const bufs = [new Uint8Array(piece), new Uint8Array(piece)]
  let pos = 0
  let next = readFully(fh, bufs[0] as Uint8Array, piece, pos)
  try {
    for (let i = 0; ; i++) {
      const got = await next
      if (got === 0) break
      pos += got
      const buf = bufs[i % 2] as Uint8Array
      // A short read is the end of the file; one more read confirms it (and catches growth).
      next = readFully(fh, bufs[(i + 1) % 2] as Uint8Array, piece, pos)
      c.update(got === piece ? buf : buf.subarray(0, got))
      onProgress?.(pos)
    }
  } catch (err) {
    await settled(next)
    throw err
  }
  return c.digest()
}
