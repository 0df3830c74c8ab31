/**
 * An image's blobs in a content-addressed store (helia): one CID per blob, and a small JSON
 * map from each OCI digest to its CID and size, itself stored (its CID names the image in the
 * store). The map is not trusted: the registry endpoint checks every blob against its OCI
 * digest, so a map (or peer) pointing a digest at other bytes makes the pull fail; the trust
 * anchor is the manifest digest, which the caller takes from the capsule's commitment.
 *
 * Why a map: a blob of at most one chunk (1 MiB) gets the raw CID whose multihash is its OCI
 * digest, but a larger one is a UnixFS DAG whose root hash is not the blob's sha256 (and one
 * raw block per blob is impossible: bitswap refuses blocks over 2 MiB).
 */
import { checkDigest, type Sha256Digest } from '../encoding.ts'
import { OciFormatError, OciLimitError } from '../errors.ts'
import { checkManifest } from '../layout/descriptor.ts'
import type { ImageLayout } from '../layout/layout.ts'
import type { Descriptor } from '../layout/types.ts'
import { ANNOTATION_REF_NAME } from '../media-types.ts'
import type { BlobSource } from '../registry/blob-source.ts'
import type { BlobStore } from './blob-store.ts'

export const DISTRIBUTION_VERSION = 1
/** Largest distribution map read. */
export const MAX_DISTRIBUTION_LENGTH = 1024 * 1024
const MAX_BLOBS = 4096

export interface ImageDistribution {
  v: typeof DISTRIBUTION_VERSION
  /** Tags → manifest digests, as the layout's index.json had them (informative, untrusted). */
  tags: Record<string, Sha256Digest>
  /** OCI digest → where the blob is in the store. */
  blobs: Record<Sha256Digest, { cid: string; size: number }>
}

/**
 * Stores every blob of the layout's image manifests (manifest, config, layers) and the map.
 * @returns the map and its CID.
 */
export async function putImageBlobs(
  layout: ImageLayout,
  store: Pick<BlobStore, 'put'>,
): Promise<{ cid: string; distribution: ImageDistribution }> {
  const index = await layout.readIndex()
  const distribution: ImageDistribution = { v: DISTRIBUTION_VERSION, tags: {}, blobs: {} }
  const put = async (descriptor: Descriptor) => {
    if (distribution.blobs[descriptor.digest]) return
    const cid = await store.put(layout.blobStream(descriptor.digest))
    distribution.blobs[descriptor.digest] = { cid, size: descriptor.size }
  }
  for (const entry of index.manifests) {
    const manifest = checkManifest(await layout.readJson(entry))
    for (const descriptor of [entry, manifest.config, ...manifest.layers]) await put(descriptor)
    const tag = entry.annotations?.[ANNOTATION_REF_NAME]
    if (tag !== undefined) distribution.tags[tag] = entry.digest
  }
  const cid = await store.put(new TextEncoder().encode(JSON.stringify(distribution)))
  return { cid, distribution }
}

/**
 * Reads and checks a distribution map from the store.
 * @throws {OciFormatError} when it is not one; {@link OciLimitError} when too long.
 */
export async function readImageDistribution(
  store: BlobStore,
  cid: string,
  options: { signal?: AbortSignal } = {},
): Promise<ImageDistribution> {
  const parts: Uint8Array[] = []
  let size = 0
  for await (const chunk of store.get(cid, options)) {
    size += chunk.length
    if (size > MAX_DISTRIBUTION_LENGTH) {
      throw new OciLimitError('Image distribution map is too long', {
        details: { cid, max: MAX_DISTRIBUTION_LENGTH },
      })
    }
    parts.push(chunk)
  }
  let json: unknown
  try {
    json = JSON.parse(Buffer.concat(parts).toString('utf8'))
  } catch (cause) {
    throw new OciFormatError('Image distribution map is not JSON', { cause, details: { cid } })
  }
  return checkDistribution(json)
}

function checkDistribution(json: unknown): ImageDistribution {
  const bad = (what: string) =>
    new OciFormatError(`Not an image distribution map: ${what}`, { details: { what } })
  const d = json as Partial<ImageDistribution> | null
  if (typeof d !== 'object' || d === null || d.v !== DISTRIBUTION_VERSION) throw bad('version')
  if (typeof d.tags !== 'object' || d.tags === null) throw bad('tags')
  if (typeof d.blobs !== 'object' || d.blobs === null) throw bad('blobs')
  const tags: Record<string, Sha256Digest> = {}
  for (const [tag, digest] of Object.entries(d.tags)) tags[tag] = checkDigest(digest, 'tag digest')
  const entries = Object.entries(d.blobs)
  if (entries.length > MAX_BLOBS) throw bad('too many blobs')
  const blobs: ImageDistribution['blobs'] = {}
  for (const [digest, entry] of entries) {
    const { cid, size } = (entry ?? {}) as { cid?: unknown; size?: unknown }
    if (typeof cid !== 'string' || cid.length === 0 || cid.length > 256) throw bad('cid')
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad('size')
    blobs[checkDigest(digest, 'blob digest')] = { cid, size }
  }
  return { v: DISTRIBUTION_VERSION, tags, blobs }
}

/** Default time a blob fetch may take before the request fails (no peer answering). */
export const DEFAULT_FETCH_TIMEOUT_MS = 120_000

/**
 * A registry {@link BlobSource} over a store: blobs by the map's CIDs, fetched from peers as
 * needed. Tags come from `tags` (the committed manifest digest), never from the map. A fetch
 * that has not finished within `timeoutMs` is aborted (the store's error, answered
 * `BLOB_UNKNOWN` when no byte was sent yet).
 */
export function storeBlobSource(init: {
  store: BlobStore
  distribution: ImageDistribution
  tags: Record<string, Sha256Digest>
  timeoutMs?: number
}): BlobSource {
  const { store, distribution, tags } = init
  const timeoutMs = init.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS
  return {
    resolveTag: async (tag) => (Object.hasOwn(tags, tag) ? tags[tag] : undefined),
    size: async (digest) =>
      Object.hasOwn(distribution.blobs, digest) ? distribution.blobs[digest]?.size : undefined,
    open(digest, options = {}) {
      const entry = Object.hasOwn(distribution.blobs, digest)
        ? distribution.blobs[digest]
        : undefined
      if (!entry) {
        throw new OciFormatError('Blob is not in the distribution map', { details: { digest } })
      }
      const timeout = AbortSignal.timeout(timeoutMs)
      const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
      return store.get(entry.cid, { signal })
    },
  }
}
