import {
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  CapsuleTruncatedError,
  MAX_HEADER_LENGTH,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from '@digicap/capsule-core'
import type { HeaderFetcher } from '@digicap/keyguard'
import type { CapsuleStore } from '@digicap/p2p'

/**
 * Reads a capsule's header from IPFS (a keyguard `HeaderFetcher`): only the first blocks
 * (preamble, header, signature), then the stream is closed.
 *
 * @example
 * ```ts
 * const { header } = await ipfsHeaderFetcher(store).fetchHeader(cid, { signal })
 * ```
 */
export function ipfsHeaderFetcher(store: Pick<CapsuleStore, 'get'>): HeaderFetcher {
  const most = CAPSULE_PREAMBLE_LENGTH + MAX_HEADER_LENGTH + CAPSULE_SIGNATURE_LENGTH
  return {
    async fetchHeader(cid, { signal }): Promise<ParsedCapsuleHeader> {
      let buf = new Uint8Array(0)
      for await (const chunk of store.get(cid, { signal })) {
        const next = new Uint8Array(buf.length + chunk.length)
        next.set(buf)
        next.set(chunk, buf.length)
        buf = next
        try {
          return parseCapsuleHeader(buf)
        } catch (err) {
          if (!(err instanceof CapsuleTruncatedError) || buf.length >= most) throw err
        }
      }
      return parseCapsuleHeader(buf)
    },
  }
}
