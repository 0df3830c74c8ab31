/**
 * Where the registry endpoint reads an image from. A source is not trusted: the endpoint
 * checks every blob and manifest against its digest before it serves it as complete.
 */
import type { Sha256Digest } from '../encoding.ts'

export interface BlobSource {
  /** The manifest digest a tag names, or `undefined` when the source has no such tag. */
  resolveTag(tag: string): Promise<Sha256Digest | undefined>
  /** The size of a blob, or `undefined` when the source does not hold it. */
  size(digest: Sha256Digest): Promise<number | undefined>
  /** The blob's bytes as the source has them (unchecked; the endpoint checks them). */
  open(digest: Sha256Digest, options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
}

/** Repositories by name (`/v2/<name>/…`): a fixed map, or a function. */
export type Repositories =
  | ReadonlyMap<string, BlobSource>
  | ((name: string) => BlobSource | undefined | Promise<BlobSource | undefined>)
