/**
 * Pulling one committed image from a content-addressed store (helia) into a local OCI layout:
 * the manifest by the digest the capsule commits to, then its config and layers, each blob
 * checked against its descriptor as it is written. The distribution map only says where the
 * bytes are; nothing it points at is kept unless its digest and size match.
 */
import { rm } from 'node:fs/promises'
import { checkDigest, type Sha256Digest } from '../encoding.ts'
import { OciFormatError, OciIntegrityError } from '../errors.ts'
import type { BlobStore } from '../helia/blob-store.ts'
import { DEFAULT_FETCH_TIMEOUT_MS, type ImageDistribution } from '../helia/distribution.ts'
import { checkAgainst, hashingTap } from '../image/copy-blob.ts'
import { checkManifest } from '../layout/descriptor.ts'
import { createLayout, type ImageLayout, MAX_JSON_BLOB_LENGTH } from '../layout/layout.ts'
import type { Descriptor, ImageManifest } from '../layout/types.ts'
import { ANNOTATION_REF_NAME, MEDIA_TYPE_IMAGE_MANIFEST } from '../media-types.ts'

export interface PullImageOptions {
  store: BlobStore
  distribution: ImageDistribution
  /** The image capsule's commitment: the only manifest pulled. */
  manifestDigest: string
  /** The layout directory written (created when missing). */
  to: string
  /** The ref name given to the manifest in the layout's index (default `capsule`). */
  ref?: string | undefined
  /** Per-blob fetch limit, ms (default {@link DEFAULT_FETCH_TIMEOUT_MS}). */
  timeoutMs?: number | undefined
  signal?: AbortSignal | undefined
  onBlob?:
    | ((event: { digest: Sha256Digest; size: number; index: number; total: number }) => void)
    | undefined
}

export interface PulledImage {
  layout: ImageLayout
  manifest: ImageManifest
  manifestDescriptor: Descriptor
  ref: string
  /** Bytes written (manifest, config, layers). */
  bytes: number
}

/**
 * Pulls the committed manifest, its config and its layers.
 * @throws {OciIntegrityError} (`manifest-digest`, `blob-digest`) / {@link OciTruncatedError}
 *   for bytes that are not the committed ones; {@link OciFormatError} for a blob the map lacks.
 * @example
 * ```ts
 * const distribution = await readImageDistribution(store, cid)
 * const { layout } = await pullImage({ store, distribution, manifestDigest, to: dir })
 * ```
 */
export async function pullImage(options: PullImageOptions): Promise<PulledImage> {
  const manifestDigest = checkDigest(options.manifestDigest, 'manifestDigest')
  const layout = await createLayout(options.to)
  const ref = options.ref ?? 'capsule'
  const where = (digest: Sha256Digest) => {
    const entry = Object.hasOwn(options.distribution.blobs, digest)
      ? options.distribution.blobs[digest]
      : undefined
    if (!entry) {
      throw new OciFormatError('Blob is not in the distribution map', { details: { digest } })
    }
    return entry
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS
  let bytes = 0
  const fetchBlob = async (descriptor: Descriptor): Promise<void> => {
    const { cid } = where(descriptor.digest)
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
    const tap = hashingTap()
    const limit = descriptor.size
    const bounded = async function* () {
      let n = 0
      for await (const chunk of options.store.get(cid, { signal })) {
        n += chunk.length
        // one byte past the descriptor is enough to refuse; never spool an endless blob
        if (n > limit + 1) break
        yield chunk
      }
    }
    const written = await layout.writeBlob(tap.tap(bounded()))
    try {
      checkAgainst(tap.result(), descriptor)
    } catch (err) {
      await rm(layout.blobPath(written.digest), { force: true })
      throw err
    }
    bytes += written.size
  }

  const manifestSize = where(manifestDigest).size
  if (manifestSize > MAX_JSON_BLOB_LENGTH) {
    throw new OciFormatError('Manifest is too long', { details: { size: manifestSize } })
  }
  const manifestDescriptor: Descriptor = {
    mediaType: MEDIA_TYPE_IMAGE_MANIFEST,
    digest: manifestDigest,
    size: manifestSize,
  }
  try {
    await fetchBlob(manifestDescriptor)
  } catch (cause) {
    if (cause instanceof OciIntegrityError) {
      throw new OciIntegrityError('The manifest is not the committed one', {
        cause,
        details: { reason: 'manifest-digest', expected: manifestDigest },
      })
    }
    throw cause
  }
  const manifest = checkManifest(await layout.readJson(manifestDescriptor))
  const blobs = [manifest.config, ...manifest.layers]
  for (const [index, descriptor] of blobs.entries()) {
    await fetchBlob(descriptor)
    options.onBlob?.({
      digest: descriptor.digest,
      size: descriptor.size,
      index,
      total: blobs.length,
    })
  }
  const entry: Descriptor = {
    ...manifestDescriptor,
    mediaType: manifest.mediaType ?? MEDIA_TYPE_IMAGE_MANIFEST,
    annotations: { [ANNOTATION_REF_NAME]: ref },
  }
  await layout.writeIndex({ schemaVersion: 2, manifests: [entry] })
  return { layout, manifest, manifestDescriptor: entry, ref, bytes }
}
