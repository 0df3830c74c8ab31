/**
 * OCI image layouts (image-spec `image-layout.md`): `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Every blob read through {@link ImageLayout.readJson} is checked against
 * its descriptor's digest and size; blobs are written to a temporary name, hashed on the way,
 * and renamed to their digest, so a reader never sees a half-written blob.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { checkDigest, digestOf, type Sha256Digest } from '../encoding.ts'
import { OciFormatError, OciIntegrityError, OciLimitError, OciTruncatedError } from '../errors.ts'
import { checkIndex } from './descriptor.ts'
import type { Descriptor, ImageIndex } from './types.ts'

/** Largest JSON blob (manifest, config, index) read into memory. */
export const MAX_JSON_BLOB_LENGTH = 4 * 1024 * 1024
const LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}'

export interface ImageLayout {
  readonly dir: string
  readIndex(): Promise<ImageIndex>
  writeIndex(index: ImageIndex): Promise<void>
  /** Path of a blob (it may not exist). */
  blobPath(digest: Sha256Digest): string
  /** The raw bytes of a blob, unchecked (check with the descriptor, or use `readJson`). */
  blobStream(digest: Sha256Digest): Readable
  /** Reads, checks (digest, size, length limit) and parses a JSON blob. */
  readJson(descriptor: Descriptor): Promise<unknown>
  /** Writes a blob from a stream; returns its digest and size. */
  writeBlob(
    source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<{ digest: Sha256Digest; size: number }>
  /** Writes bytes as a blob. */
  writeBytes(bytes: Uint8Array): Promise<{ digest: Sha256Digest; size: number }>
}

/**
 * Opens an existing layout.
 * @throws {OciFormatError} when `oci-layout` is missing or not version 1.0.0.
 */
export async function openLayout(dir: string): Promise<ImageLayout> {
  let marker: unknown
  try {
    marker = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))
  } catch (cause) {
    throw new OciFormatError('Not an OCI image layout (no readable oci-layout file)', {
      cause,
      details: { dir },
    })
  }
  if ((marker as { imageLayoutVersion?: unknown })?.imageLayoutVersion !== '1.0.0') {
    throw new OciFormatError('Unsupported OCI image layout version', { details: { dir } })
  }
  return layoutAt(dir)
}

/** Creates (or reuses) a layout directory with an empty index. */
export async function createLayout(dir: string): Promise<ImageLayout> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(dir, 'oci-layout'), LAYOUT_FILE)
  const layout = layoutAt(dir)
  const hasIndex = await stat(join(dir, 'index.json')).then(
    () => true,
    () => false,
  )
  if (!hasIndex) await layout.writeIndex({ schemaVersion: 2, manifests: [] })
  return layout
}

function layoutAt(dir: string): ImageLayout {
  const blobPath = (digest: Sha256Digest) =>
    join(dir, 'blobs', 'sha256', checkDigest(digest, 'digest').slice('sha256:'.length))
  const layout: ImageLayout = {
    dir,
    async readIndex() {
      let text: string
      try {
        text = await readFile(join(dir, 'index.json'), 'utf8')
      } catch (cause) {
        throw new OciFormatError('Image layout has no index.json', { cause, details: { dir } })
      }
      if (text.length > MAX_JSON_BLOB_LENGTH) throw new OciLimitError('index.json is too long')
      try {
        return checkIndex(JSON.parse(text))
      } catch (cause) {
        if (cause instanceof OciFormatError) throw cause
        throw new OciFormatError('index.json is not JSON', { cause })
      }
    },
    async writeIndex(index) {
      const tmp = join(dir, `.index.json.${randomBytes(6).toString('hex')}`)
      await writeFile(tmp, JSON.stringify(index))
      await rename(tmp, join(dir, 'index.json'))
    },
    blobPath,
    blobStream: (digest) => createReadStream(blobPath(digest)),
    async readJson(descriptor) {
      if (descriptor.size > MAX_JSON_BLOB_LENGTH) {
        throw new OciLimitError('JSON blob is too long', {
          details: { size: descriptor.size, max: MAX_JSON_BLOB_LENGTH },
        })
      }
      let bytes: Buffer
      try {
        bytes = await readFile(blobPath(descriptor.digest))
      } catch (cause) {
        throw new OciFormatError('Blob is missing from the layout', {
          cause,
          details: { digest: descriptor.digest },
        })
      }
      if (bytes.length < descriptor.size) {
        throw new OciTruncatedError('Blob is shorter than its descriptor', {
          details: { digest: descriptor.digest, size: bytes.length, expected: descriptor.size },
        })
      }
      const digest = digestOf(createHash('sha256').update(bytes).digest())
      if (bytes.length !== descriptor.size || digest !== descriptor.digest) {
        throw new OciIntegrityError('Blob differs from its descriptor', {
          details: { reason: 'blob-digest', digest, expected: descriptor.digest },
        })
      }
      try {
        return JSON.parse(bytes.toString('utf8'))
      } catch (cause) {
        throw new OciFormatError('Blob is not JSON', { cause, details: { digest } })
      }
    },
    async writeBlob(source) {
      const tmp = join(dir, 'blobs', `.tmp-${randomBytes(8).toString('hex')}`)
      const hash = createHash('sha256')
      let size = 0
      try {
        await pipeline(
          Readable.from(source),
          async function* (chunks: AsyncIterable<Uint8Array>) {
            for await (const chunk of chunks) {
              hash.update(chunk)
              size += chunk.length
              yield chunk
            }
          },
          createWriteStream(tmp, { mode: 0o644 }),
        )
        const digest = digestOf(hash.digest())
        await rename(tmp, blobPath(digest))
        return { digest, size }
      } catch (error) {
        await rm(tmp, { force: true })
        throw error
      }
    },
    writeBytes: (bytes) => layout.writeBlob([bytes]),
  }
  return layout
}
