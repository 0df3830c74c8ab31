/** Copying a blob between layouts, checked against its descriptor on the way. */
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { access, rm } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { digestOf, type Sha256Digest } from '../encoding.ts'
import { OciFormatError, OciIntegrityError, OciTruncatedError } from '../errors.ts'
import type { ImageLayout } from '../layout/layout.ts'
import type { Descriptor } from '../layout/types.ts'

/** A tap that hashes and counts what flows through it. */
export function hashingTap(): {
  tap: (chunks: AsyncIterable<Uint8Array>) => AsyncGenerator<Uint8Array>
  result(): { digest: Sha256Digest; size: number }
} {
  const hash = createHash('sha256')
  let size = 0
  return {
    async *tap(chunks) {
      for await (const chunk of chunks) {
        hash.update(chunk)
        size += chunk.length
        yield chunk
      }
    },
    result: () => ({ digest: digestOf(hash.digest()), size }),
  }
}

/**
 * Compares what was read with the descriptor.
 * @throws {OciTruncatedError} when shorter; {@link OciIntegrityError} when it differs.
 */
export function checkAgainst(
  read: { digest: Sha256Digest; size: number },
  descriptor: Descriptor,
): void {
  if (read.size < descriptor.size) {
    throw new OciTruncatedError('Blob is shorter than its descriptor', {
      details: { digest: descriptor.digest, size: read.size, expected: descriptor.size },
    })
  }
  if (read.size !== descriptor.size || read.digest !== descriptor.digest) {
    throw new OciIntegrityError('Blob differs from its descriptor', {
      details: { reason: 'blob-digest', digest: read.digest, expected: descriptor.digest },
    })
  }
}

/**
 * Opens a source blob.
 * @throws {OciFormatError} when the layout does not hold it.
 */
export async function sourceBlob(layout: ImageLayout, descriptor: Descriptor): Promise<Readable> {
  try {
    await access(layout.blobPath(descriptor.digest), constants.R_OK)
  } catch (cause) {
    throw new OciFormatError('Blob is missing from the layout', {
      cause,
      details: { digest: descriptor.digest },
    })
  }
  return layout.blobStream(descriptor.digest)
}

/**
 * Copies a blob and checks it.
 * @throws {OciFormatError} when it is missing; see {@link checkAgainst}.
 */
export async function copyBlob(
  from: ImageLayout,
  to: ImageLayout,
  descriptor: Descriptor,
): Promise<void> {
  const tap = hashingTap()
  const source = await sourceBlob(from, descriptor)
  let written: { digest: Sha256Digest } | undefined
  try {
    written = await to.writeBlob(tap.tap(source))
  } catch (cause) {
    throw new OciFormatError('Blob cannot be read from the layout', {
      cause,
      details: { digest: descriptor.digest },
    })
  }
  try {
    checkAgainst(tap.result(), descriptor)
  } catch (error) {
    if (written.digest !== descriptor.digest) await rm(to.blobPath(written.digest), { force: true })
    throw error
  }
}
