/**
 * Encrypting an image in an OCI layout into another layout, as `skopeo copy --encryption-key`
 * does: every tar layer becomes `…+encrypted` with new digest and size and the ocicrypt
 * annotations; config and other blobs are copied; manifests are rewritten with new digests.
 */
import { pipeline } from 'node:stream/promises'
import { layerEncryptor } from '../cipher/encrypt-layer.ts'
import type { Sha256Digest } from '../encoding.ts'
import { OciUnsupportedError } from '../errors.ts'
import { checkManifest } from '../layout/descriptor.ts'
import { createLayout, type ImageLayout, openLayout } from '../layout/layout.ts'
import type { Descriptor, ImageManifest } from '../layout/types.ts'
import {
  ANNOTATION_REF_NAME,
  ENCRYPTABLE_LAYER_MEDIA_TYPES,
  encryptedMediaType,
  isEncryptedMediaType,
} from '../media-types.ts'
import { encryptionAnnotations } from '../recipients/annotations.ts'
import type { LayerRecipient } from '../recipients/recipient.ts'
import { checkAgainst, copyBlob, hashingTap, sourceBlob } from './copy-blob.ts'
import { writeIndexEntries } from './index-entries.ts'
import { selectManifests } from './select.ts'

export interface EncryptImageOptions {
  /** Source layout (a directory or an opened layout). */
  from: string | ImageLayout
  /** Target layout directory (created when missing) or an opened layout. */
  to: string | ImageLayout
  /** Who can decrypt each layer: a Digicap recipient, a jwe recipient, or both. */
  recipients: readonly LayerRecipient[]
  /** Only the manifest tagged `ref` (`org.opencontainers.image.ref.name`); all by default. */
  ref?: string | undefined
  /** Called after each layer (for progress bars). */
  onLayer?: ((event: { index: number; total: number; size: number }) => void) | undefined
}

/** One rewritten manifest. */
export interface ImageResult {
  ref: string | undefined
  /** The new manifest's digest: the image capsule's commitment. */
  digest: Sha256Digest
  size: number
  layers: { from: Sha256Digest; to: Sha256Digest; size: number }[]
}

async function layoutOf(value: string | ImageLayout, create: boolean): Promise<ImageLayout> {
  if (typeof value !== 'string') return value
  return create ? createLayout(value) : openLayout(value)
}

/**
 * Encrypts every tar layer of the selected manifests.
 *
 * @throws {OciUnsupportedError} for an already encrypted layer or a nested index.
 * @throws {OciIntegrityError} / {@link OciTruncatedError} when a source blob differs from its descriptor.
 * @example
 * ```ts
 * const [image] = await encryptImage({ from: 'busybox', to: 'sealed', recipients: [jweRecipient([pem])] })
 * console.log(image.digest)
 * ```
 */
export async function encryptImage(options: EncryptImageOptions): Promise<ImageResult[]> {
  const from = await layoutOf(options.from, false)
  const to = await layoutOf(options.to, true)
  const index = await from.readIndex()
  const results: ImageResult[] = []
  const chosen = selectManifests(index, options.ref)
  const rewritten = new Map<Descriptor, Descriptor>()
  for (const entry of chosen) {
    const manifest = checkManifest(await from.readJson(entry))
    const encryptable = manifest.layers.filter((l) =>
      ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(l.mediaType),
    )
    await copyBlob(from, to, manifest.config)
    const layers: Descriptor[] = []
    const done: ImageResult['layers'] = []
    for (const layer of manifest.layers) {
      if (isEncryptedMediaType(layer.mediaType)) {
        throw new OciUnsupportedError('Layer is already encrypted', {
          details: { digest: layer.digest },
          hint: 'Start from the plain image; adding recipients to an encrypted one is not supported.',
        })
      }
      if (!ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(layer.mediaType)) {
        await copyBlob(from, to, layer)
        layers.push(layer)
        continue
      }
      const tap = hashingTap()
      const encryptor = layerEncryptor({ digest: layer.digest })
      let blob: { digest: Sha256Digest; size: number } | undefined
      await pipeline(
        await sourceBlob(from, layer),
        tap.tap,
        encryptor.stream,
        async (ciphertext) => {
          blob = await to.writeBlob(ciphertext)
        },
      )
      checkAgainst(tap.result(), layer)
      const encrypted = encryptor.result()
      const annotations = await encryptionAnnotations(encrypted, options.recipients)
      encrypted.private.symmetricKey.fill(0)
      layers.push({
        ...layer,
        mediaType: encryptedMediaType(layer.mediaType),
        digest: encrypted.digest,
        size: encrypted.size,
        annotations: { ...layer.annotations, ...annotations },
      })
      done.push({ from: layer.digest, to: encrypted.digest, size: blob?.size ?? encrypted.size })
      options.onLayer?.({ index: done.length - 1, total: encryptable.length, size: encrypted.size })
    }
    const next: ImageManifest = { ...manifest, layers }
    const written = await to.writeBytes(new TextEncoder().encode(JSON.stringify(next)))
    rewritten.set(entry, { ...entry, digest: written.digest, size: written.size })
    results.push({
      ref: entry.annotations?.[ANNOTATION_REF_NAME],
      digest: written.digest,
      size: written.size,
      layers: done,
    })
  }
  await writeIndexEntries(to, rewritten)
  return results
}
