/**
 * SHA-256 of a block, as a multihash, computed off the main thread: WebCrypto's `digest` runs
 * in libuv's thread pool, so the import's concurrent leaf writes hash on every core instead of
 * one after another on the event loop (multiformats' `sha256` hashes synchronously). Hashing was
 * most of a filestore import's time once the second copy of the capsule was gone.
 */
import { webcrypto } from 'node:crypto'
import { create, type Digest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'

export async function sha256Leaf(bytes: Uint8Array): Promise<Digest<typeof sha256.code, number>> {
  // WebCrypto copies the bytes when called: the caller may reuse its buffer right away
  const digest = await webcrypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)
  return create(sha256.code, new Uint8Array(digest))
}
