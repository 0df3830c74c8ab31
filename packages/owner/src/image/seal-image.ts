/**
 * Sealing an image capsule: the data key is made and wrapped first, because the image's layers
 * are encrypted to it (`provider.digicap` recipient, ocicrypt's format); the encrypted image's
 * blobs go to the store; the capsule's payload names them (image.json) and carries the run's
 * input; then `sealAndPublish` seals, registers and announces the capsule with the manifest
 * digest as its runtime entry: the commitment the executor pulls against.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { generateCapsuleId, generateDataKey, InvalidArgumentError } from '@digicap/capsule-core'
import { wrapToRecoveryKey } from '@digicap/keyguard/local'
import {
  type BlobStore,
  checkManifest,
  digicapRecipient,
  encodeImagePayload,
  encryptImage,
  type ImageLayout,
  openLayout,
  putImageBlobs,
} from '@digicap/oci'
import { InputFileError } from '../errors.ts'
import { sealAndPublish } from '../seal/seal-and-publish.ts'
import type {
  SealAndPublishComponents,
  SealAndPublishParameters,
  SealAndPublishResult,
} from '../seal/types.ts'

const execFileAsync = promisify(execFile)

export interface SealImageParameters
  extends Omit<SealAndPublishParameters, 'input' | 'runtime' | 'keys'> {
  /** An OCI image layout directory, or a `docker save` archive (converted with skopeo). */
  image: string
  /** Which image of the layout (its `org.opencontainers.image.ref.name`); default: the only one. */
  ref?: string
  /** The run's input file (mounted read-only at /digicap/input). Default: none. */
  inputFile?: string
  /** Scratch directory for the encrypted layout and the payload (removed after). */
  workDir: string
  memoryLimit?: number
  timeLimit?: number
}

export interface SealImageComponents extends SealAndPublishComponents {
  /** Where the encrypted image's blobs go (the blockstore the owner's node provides). */
  blobs: Pick<BlobStore, 'put'>
}

export interface SealImageResult extends SealAndPublishResult {
  manifestDigest: string
  /** CID of the image's distribution map. */
  distribution: string
  imageBytes: number
}

async function imageLayout(image: string, work: string, ref: string | undefined) {
  const st = await stat(image).catch((cause) => {
    throw new InputFileError('Cannot read the image', { cause, details: { image } })
  })
  if (st.isDirectory()) return { dir: image, ref }
  // a docker-archive: skopeo turns it into an OCI layout, no daemon
  const dir = join(work, 'plain')
  const tag = ref ?? 'image'
  await execFileAsync(
    'skopeo',
    ['--insecure-policy', 'copy', `docker-archive:${image}`, `oci:${dir}:${tag}`],
    {
      timeout: 600_000,
    },
  ).catch((cause) => {
    throw new InputFileError(
      'The image is neither an OCI layout nor a docker archive skopeo reads',
      {
        cause,
        details: {
          image,
          reason: String((cause as { stderr?: string }).stderr ?? '').slice(0, 200),
        },
      },
    )
  })
  return { dir, ref: tag }
}

async function layerBytes(layout: ImageLayout): Promise<number> {
  let total = 0
  for (const entry of (await layout.readIndex()).manifests) {
    const manifest = checkManifest(await layout.readJson(entry))
    for (const l of manifest.layers) total += l.size
  }
  return total
}

/**
 * @throws the pipeline's errors; {@link InputFileError} for an unreadable image or input.
 * @example
 * ```ts
 * const r = await sealImageCapsule({ image: 'app-oci', inputFile: 'data.csv', workDir, output, policy, … },
 *   { ...components, blobs: heliaCapsuleStore(node.helia) })
 * ```
 */
export async function sealImageCapsule(
  params: SealImageParameters,
  components: SealImageComponents,
): Promise<SealImageResult> {
  const progress = params.onProgress ?? (() => {})
  const work = await mkdtemp(join(params.workDir, 'seal-image-'))
  const capsuleId = params.capsuleId ?? generateCapsuleId()
  const dataKey = generateDataKey()
  try {
    const input = params.inputFile
      ? new Uint8Array(
          await readFile(params.inputFile).catch((cause) => {
            throw new InputFileError('Cannot read the input file', {
              cause,
              details: { file: params.inputFile },
            })
          }),
        )
      : new Uint8Array(0)
    const source = await imageLayout(params.image, work, params.ref)
    const plain = await openLayout(source.dir)
    const total = await layerBytes(plain)
    const wrappedKeys = [
      await components.wrapper.wrap(dataKey),
      await wrapToRecoveryKey(dataKey, params.recoveryPublicKey),
    ]
    const sealedDir = join(work, 'sealed')
    let done = 0
    progress('image', 0, total)
    const images = await encryptImage({
      from: plain,
      to: sealedDir,
      recipients: [digicapRecipient({ capsuleId, dataKey, wrappedKeys })],
      ...(source.ref !== undefined ? { ref: source.ref } : {}),
      onLayer: (e) => {
        done += e.size
        progress('image', done, total)
      },
    })
    if (images.length !== 1 || !images[0]) {
      throw new InvalidArgumentError('The layout holds several images: name one with ref', {
        details: { images: images.length },
      })
    }
    const manifestDigest = images[0].digest
    progress('blobs', 0, 1)
    const { cid: distribution } = await putImageBlobs(await openLayout(sealedDir), components.blobs)
    progress('blobs', 1, 1)
    const payload = join(work, 'payload.bin')
    await writeFile(payload, encodeImagePayload({ distribution, input }), { mode: 0o600 })
    input.fill(0)
    const r = await sealAndPublish(
      {
        ...params,
        input: payload,
        capsuleId,
        keys: { dataKey, wrappedKeys },
        runtime: {
          kind: 'oci',
          entry: manifestDigest,
          ...(params.memoryLimit !== undefined ? { memoryLimit: params.memoryLimit } : {}),
          ...(params.timeLimit !== undefined ? { timeLimit: params.timeLimit } : {}),
        },
      },
      components,
    )
    return { ...r, manifestDigest, distribution, imageBytes: total }
  } finally {
    dataKey.fill(0)
    await rm(work, { recursive: true, force: true })
  }
}
