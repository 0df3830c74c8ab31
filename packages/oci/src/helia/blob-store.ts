/**
 * What this package needs of a content-addressed store: `@digicap/p2p`'s `CapsuleStore`
 * (helia, UnixFS, bitswap) has this shape; the package does not depend on it.
 */
export interface BlobStore {
  /** Stores bytes, returns their CID (string). */
  put(source: Uint8Array | AsyncIterable<Uint8Array>): Promise<string>
  /** Streams the bytes of a CID, fetching them from peers when they are not local. */
  get(cid: string, options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
}
