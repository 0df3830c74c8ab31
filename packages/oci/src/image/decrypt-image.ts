/**
 * Decrypting an image in an OCI layout into another layout with the strict decryptor: each
 * encrypted layer is authenticated (HMAC, digests, size) before a byte of it is decrypted
 * into the target, and gets back its plain media type, digest, size and annotations.
 */
import { pipeline } from 'node:stream/promises'
import { openLayer } from '../cipher/open-layer.ts'
import { OciIntegrityError } from '../errors.ts'
import { checkManifest } from '../layout/descriptor.ts'
import { createLayout, type ImageLayout, openLayout } from '../layout/layout.ts'
import type { Descriptor, ImageManifest } from '../layout/types.ts'
import {
  ANNOTATION_ENC_PREFIX,
  ANNOTATION_REF_NAME,
  decryptedMediaType,
  isEncryptedMediaType,
} from '../media-types.ts'
import { publicOptionsOf, unwrapPrivateOptions } from '../recipients/annotations.ts'
import type { LayerUnwrapper } from '../recipients/recipient.ts'
import { copyBlob, sourceBlob } from './copy-blob.ts'
import type { ImageResult } from './encrypt-image.ts'
import { writeIndexEntries } from './index-entries.ts'
import { selectManifests } from './select.ts'

export interface DecryptImageOptions {
  from: string | ImageLayout
  to: string | ImageLayout
  /** Keys to try, in order: `jweUnwrapper([pem])`, `digicapUnwrapper({ dataKey })`. */
  unwrappers: readonly LayerUnwrapper[]
  ref?: string | undefined
  /**
   * The image capsule's commitment (the sealed manifest's digest, pinned on chain). When given,
   * only that manifest is decrypted, and an index without it is refused. Always pass it for an
   * image from the network: a `jwe` recipient authenticates nobody (anyone with the public key
   * can encrypt a layer to it), so only the committed manifest ties the layers to the owner.
   */
  manifestDigest?: string | undefined
  /** Where ciphertext is spooled while it is authenticated (default: the OS temp dir). */
  spoolDir?: string | undefined
  onLayer?: ((event: { index: number; total: number; size: number }) => void) | undefined
}

function withoutEncryptionAnnotations(
  annotations: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!annotations) return undefined
  const kept = Object.entries(annotations).filter(([k]) => !k.startsWith(ANNOTATION_ENC_PREFIX))
  return kept.length > 0 ? Object.fromEntries(kept) : undefined
}

/**
 * Decrypts every encrypted layer of the selected manifests.
 *
 * @throws {OciKeyError} when no unwrapper opens a layer's options.
 * @throws {OciIntegrityError} / {@link OciTruncatedError} for altered, cut or reordered blobs.
 * @throws {OciFormatError} for malformed manifests or annotations.
 * @example
 * ```ts
 * await decryptImage({ from: 'sealed', to: 'plain', unwrappers: [jweUnwrapper([privatePem])] })
 * ```
 */
export async function decryptImage(options: DecryptImageOptions): Promise<ImageResult[]> {
  const from = typeof options.from === 'string' ? await openLayout(options.from) : options.from
  const to = typeof options.to === 'string' ? await createLayout(options.to) : options.to
  const index = await from.readIndex()
  const results: ImageResult[] = []
  const rewritten = new Map<Descriptor, Descriptor>()
  for (const entry of selectManifests(index, options.ref, options.manifestDigest)) {
    const manifest = checkManifest(await from.readJson(entry))
    const total = manifest.layers.filter((l) => isEncryptedMediaType(l.mediaType)).length
    await copyBlob(from, to, manifest.config)
    const layers: Descriptor[] = []
    const done: ImageResult['layers'] = []
    for (const layer of manifest.layers) {
      if (!isEncryptedMediaType(layer.mediaType)) {
        await copyBlob(from, to, layer)
        layers.push(layer)
        continue
      }
      const mediaType = decryptedMediaType(layer.mediaType)
      const publicOptions = publicOptionsOf(layer.annotations)
      const privateOptions = await unwrapPrivateOptions(layer.annotations, options.unwrappers)
      try {
        const verified = await openLayer(await sourceBlob(from, layer), {
          private: privateOptions,
          public: publicOptions,
          expected: layer,
          mediaType,
          spoolDir: options.spoolDir,
        })
        let written: { digest: string; size: number } | undefined
        await pipeline(verified.stream(), async (plain) => {
          written = await to.writeBlob(plain)
        })
        if (written?.digest !== verified.digest) {
          throw new OciIntegrityError('Decrypted layer changed while it was written', {
            details: { reason: 'plain-digest', expected: verified.digest },
          })
        }
        const { annotations: _dropped, ...rest } = layer
        const annotations = withoutEncryptionAnnotations(layer.annotations)
        layers.push({
          ...rest,
          mediaType,
          digest: verified.digest,
          size: verified.size,
          ...(annotations ? { annotations } : {}),
        })
        done.push({ from: layer.digest, to: verified.digest, size: verified.size })
        options.onLayer?.({ index: done.length - 1, total, size: verified.size })
      } finally {
        privateOptions.symmetricKey.fill(0)
      }
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
