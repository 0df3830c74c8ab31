/**
 * One SHA-256 per block received, not two (ADR 0057). `@helia/bitswap` 4 hashes every block it
 * receives to name it (its CID is made from the digest of the bytes); the fetch hands a block
 * on only for the want whose whole multihash that CID has (ADR 0050); then helia's storage
 * hashes the same bytes again to check them against the CID asked for. Here helia's SHA-256
 * hasher first looks for the digest bitswap computed of that very byte array (kept by object
 * identity, in a `WeakMap`, from bitswap's `block` event) and computes one only when there is
 * none. The check is the same comparison of the digest of the received bytes with the CID; it
 * is computed once. 7 % of a 100 MiB fetch's event-loop time went to the second hash.
 */
import type { Helia } from '@helia/interface'
import type { MultihashDigest, MultihashHasher } from 'multiformats/hashes/interface'
import { sha256 } from 'multiformats/hashes/sha2'
import { bitswapBroker } from './have-first/bitswap-parts.ts'

interface BlockEvent {
  detail: { cid: { multihash: MultihashDigest }; block: Uint8Array }
}

export interface ReceivedDigests {
  /** helia's SHA-256 hasher (`new Helia({ hashers: [hasher] })`). */
  readonly hasher: MultihashHasher<typeof sha256.code>
  /** Starts keeping the digests of the blocks the node's bitswap receives. */
  listen(helia: Helia): void
  stop(): void
}

export function createReceivedDigests(): ReceivedDigests {
  // digests bitswap computed, by the byte array it computed them of
  const digests = new WeakMap<Uint8Array, MultihashDigest>()
  let source: EventTarget | undefined
  const onBlock = (event: Event) => {
    const { cid, block } = (event as unknown as BlockEvent).detail
    if (cid.multihash.code === sha256.code) digests.set(block, cid.multihash)
  }
  const hasher: MultihashHasher<typeof sha256.code> = {
    name: sha256.name,
    code: sha256.code,
    encode: (input) => sha256.encode(input),
    digest(input: Uint8Array, options?: { truncate?: number }) {
      const known = digests.get(input)
      if (known !== undefined && known.digest.byteLength === (options?.truncate ?? 32)) {
        digests.delete(input)
        return known as MultihashDigest<typeof sha256.code>
      }
      return sha256.digest(input, options)
    },
  }
  return {
    hasher,
    listen(helia) {
      source = bitswapBroker(helia).bitswap.wantList
      source.addEventListener('block', onBlock)
    },
    stop() {
      source?.removeEventListener('block', onBlock)
      source = undefined
    },
  }
}
