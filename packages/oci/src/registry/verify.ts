/**
 * Digest checks of blobs coming from an untrusted {@link BlobSource}. Three ways, one per use:
 * - `readVerified`: small JSON blobs (manifests), read whole, checked, then served;
 * - `relayVerified`: a whole blob streamed to the client while it is hashed, holding the last
 *   chunk back until the digest and size match; on a mismatch the response is cut short, so
 *   the client never receives the advertised `Content-Length` and cannot take the blob;
 * - `spoolVerified`: a `Range` request: the whole blob is copied to a private spool file and
 *   checked first (a range alone cannot be checked), then the range is read from the spool.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { digestOf, type Sha256Digest } from '../encoding.ts'
import { OciIntegrityError, OciLimitError, OciTruncatedError } from '../errors.ts'

export interface ExpectedBlob {
  digest: Sha256Digest
  size: number
}

function mismatch(expected: ExpectedBlob, digest: Sha256Digest, size: number): Error {
  if (size < expected.size) {
    return new OciTruncatedError('The source sent a blob shorter than its size', {
      details: { digest: expected.digest, size, expected: expected.size },
    })
  }
  return new OciIntegrityError('The source sent bytes that are not the blob', {
    details: { reason: 'blob-digest', digest, expected: expected.digest, size },
    hint: 'The peer or store holding this blob serves wrong bytes: fetch it from another one.',
  })
}

/**
 * Reads a whole blob of at most `max` bytes and checks it.
 * @throws {OciLimitError} over `max`; {@link OciIntegrityError} / {@link OciTruncatedError}.
 */
export async function readVerified(
  chunks: AsyncIterable<Uint8Array>,
  expected: ExpectedBlob,
  max: number,
): Promise<Buffer> {
  if (expected.size > max) {
    throw new OciLimitError('Manifest is too long', { details: { size: expected.size, max } })
  }
  const parts: Uint8Array[] = []
  let size = 0
  for await (const chunk of chunks) {
    size += chunk.length
    if (size > expected.size) break
    parts.push(chunk)
  }
  const bytes = Buffer.concat(parts)
  const digest = digestOf(createHash('sha256').update(bytes).digest())
  if (size !== expected.size || digest !== expected.digest) throw mismatch(expected, digest, size)
  return bytes
}

/**
 * Passes a blob on chunk by chunk, holding back the last chunk until the whole blob is
 * checked; `write` resolves when the sink can take more (back-pressure).
 * @throws {OciIntegrityError} / {@link OciTruncatedError} before the last chunk is written.
 */
export async function relayVerified(
  chunks: AsyncIterable<Uint8Array>,
  expected: ExpectedBlob,
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<void> {
  const hash = createHash('sha256')
  let size = 0
  let held: Uint8Array | undefined
  for await (const chunk of chunks) {
    if (chunk.length === 0) continue
    size += chunk.length
    // Too long: stop at once, before passing on anything beyond the blob's size.
    if (size > expected.size) throw mismatch(expected, digestOf(hash.digest()), size)
    hash.update(chunk)
    if (held) await write(held)
    held = chunk
  }
  const digest = digestOf(hash.digest())
  if (size !== expected.size || digest !== expected.digest) throw mismatch(expected, digest, size)
  if (held) await write(held)
}

/** A checked copy of a blob in a private spool directory. */
export interface SpooledBlob {
  path: string
  dispose(): Promise<void>
}

/**
 * Copies a whole blob into a 0600 file in a fresh 0700 directory under `spoolDir`, checking
 * it; the copy is removed on failure.
 */
export async function spoolVerified(
  chunks: AsyncIterable<Uint8Array>,
  expected: ExpectedBlob,
  spoolDir: string = tmpdir(),
): Promise<SpooledBlob> {
  const dir = await mkdtemp(join(spoolDir, 'digicap-oci-registry-'))
  const dispose = () => rm(dir, { recursive: true, force: true })
  const path = join(dir, randomBytes(8).toString('hex'))
  try {
    const hash = createHash('sha256')
    let size = 0
    await pipeline(
      chunks,
      async function* (source: AsyncIterable<Uint8Array>) {
        for await (const chunk of source) {
          size += chunk.length
          if (size > expected.size) throw mismatch(expected, digestOf(hash.digest()), size)
          hash.update(chunk)
          yield chunk
        }
      },
      createWriteStream(path, { mode: 0o600 }),
    )
    const digest = digestOf(hash.digest())
    if (size !== expected.size || digest !== expected.digest) throw mismatch(expected, digest, size)
    return { path, dispose }
  } catch (error) {
    await dispose()
    throw error
  }
}
