/**
 * The node's read-only OCI registry endpoint for one image capsule, on 127.0.0.1: the local
 * container tools (`skopeo copy docker://127.0.0.1:PORT/capsules/<id>:capsule …`, podman with a
 * mirror) pull the capsule's encrypted image from this node's helia, whose blobs bitswap
 * fetches from any peer holding them. The tag is the manifest digest the capsule's header
 * commits to (owner-signed, registered on chain), never the untrusted map's, and every blob is
 * checked against its digest as it is served: a peer serving other bytes fails the pull.
 */
import { MAX_HEADER_LENGTH, parseCapsuleHeader, toHex } from '@digicap/capsule-core'
import {
  readImageDistribution,
  type Sha256Digest,
  startRegistry,
  storeBlobSource,
} from '@digicap/oci'
import type { CapsuleStore } from '@digicap/p2p'
import type { ExecutorChain } from '../chain.ts'
import { CapsuleFetchError, SandboxRuntimeUnsupportedError } from '../errors.ts'
import { verifyCapsule } from '../load/loader.ts'
import type { Sandbox } from '../sandbox/types.ts'

export interface ServeImageRegistryParameters {
  /** The image capsule's CID (header verified against the chain). */
  readonly cid: string
  /** CID of the image's distribution map (`pi-node seal-image` prints it). */
  readonly image: string
  /** Default 0 (ephemeral). The host is always 127.0.0.1. */
  readonly port?: number | undefined
  /** Per-blob fetch limit, ms. */
  readonly fetchTimeoutMs?: number | undefined
  readonly signal?: AbortSignal | undefined
}

export interface ImageRegistry {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `127.0.0.1:PORT/capsules/<capsule id hex>:capsule`, for `docker://…`. */
  readonly reference: string
  readonly manifestDigest: string
  close(): Promise<void>
}

/** Verification only needs to know the kind is served; this stand-in never runs anything. */
const SERVE_ONLY: Sandbox = {
  kind: 'oci',
  runtimeId: 'registry',
  run: async () => {
    throw new SandboxRuntimeUnsupportedError('The registry endpoint serves images; it runs none')
  },
  close: async () => {},
}

async function capsuleHeader(store: CapsuleStore, cid: string, signal?: AbortSignal) {
  const parts: Uint8Array[] = []
  let length = 0
  for await (const chunk of store.get(cid, signal ? { signal } : {})) {
    parts.push(chunk)
    length += chunk.length
    try {
      return parseCapsuleHeader(new Uint8Array(Buffer.concat(parts, length)))
    } catch (err) {
      if (length > MAX_HEADER_LENGTH + 1024) {
        throw new CapsuleFetchError('The content is not a capsule', { cause: err })
      }
    }
  }
  throw new CapsuleFetchError('The content is not a capsule (too short)')
}

/**
 * @throws CapsuleUnverifiedError / RegistryMismatchError for a capsule the chain does not back;
 *   SandboxRuntimeUnsupportedError for a capsule that is not an image capsule; OCI_FORMAT for
 *   a bad distribution map.
 * @example
 * ```ts
 * const reg = await serveImageRegistry({ store: en.store, chain: en.chain }, { cid, image })
 * // skopeo copy --src-tls-verify=false docker://${reg.reference} oci:out:v1
 * ```
 */
export async function serveImageRegistry(
  c: { readonly store: CapsuleStore; readonly chain: ExecutorChain },
  p: ServeImageRegistryParameters,
): Promise<ImageRegistry> {
  const parsed = await capsuleHeader(c.store, p.cid, p.signal)
  await verifyCapsule({ cid: p.cid, parsed, chain: c.chain, sandboxes: { oci: SERVE_ONLY } })
  const { runtime, capsuleId } = parsed.header
  if (runtime.kind !== 'oci' || runtime.entry === undefined) {
    throw new SandboxRuntimeUnsupportedError('This capsule is not an image capsule', {
      details: { kind: runtime.kind },
    })
  }
  const manifestDigest = runtime.entry as Sha256Digest
  const distribution = await readImageDistribution(
    c.store,
    p.image,
    p.signal ? { signal: p.signal } : {},
  )
  const name = `capsules/${toHex(capsuleId).slice(2)}`
  const registry = await startRegistry({
    host: '127.0.0.1',
    port: p.port ?? 0,
    repositories: new Map([
      [
        name,
        storeBlobSource({
          store: c.store,
          distribution,
          tags: { capsule: manifestDigest },
          ...(p.fetchTimeoutMs !== undefined ? { timeoutMs: p.fetchTimeoutMs } : {}),
        }),
      ],
    ]),
  })
  return {
    url: registry.url,
    reference: `127.0.0.1:${registry.port}/${name}:capsule`,
    manifestDigest,
    close: () => registry.close(),
  }
}
