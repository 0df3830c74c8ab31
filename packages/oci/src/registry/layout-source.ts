/** A {@link BlobSource} over an OCI image layout on disk (tags from index.json ref names). */
import { stat } from 'node:fs/promises'
import type { Sha256Digest } from '../encoding.ts'
import type { ImageLayout } from '../layout/layout.ts'
import { ANNOTATION_REF_NAME } from '../media-types.ts'
import type { BlobSource } from './blob-source.ts'

/**
 * Serves the blobs of a layout; a tag is the `org.opencontainers.image.ref.name` of an
 * index.json entry (the last one wins, as in `writeIndexEntries`).
 */
export function layoutBlobSource(layout: ImageLayout): BlobSource {
  return {
    async resolveTag(tag) {
      const index = await layout.readIndex()
      const entry = index.manifests.findLast((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag)
      return entry?.digest
    },
    async size(digest: Sha256Digest) {
      const info = await stat(layout.blobPath(digest)).catch(() => undefined)
      return info?.isFile() ? info.size : undefined
    },
    // The endpoint stops reading (and so closes the file) when the client goes away.
    open: (digest) => layout.blobStream(digest),
  }
}
