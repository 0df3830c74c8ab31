/**
 * `CapsuleStore`: where capsule bytes live. The interface is apart from its one
 * implementation here (`heliaCapsuleStore`, UnixFS over helia); any other implementation
 * (a kubo node, a plain folder) must pass the same compliance suite.
 */
import { createReadStream } from 'node:fs'
import type { Helia } from '@helia/interface'
import { unixfs } from '@helia/unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { CapsuleStoreError, InvalidCidError } from './errors.ts'

/** What `put` accepts: bytes, a byte stream, or the path of a local file (streamed). */
export type CapsuleSource = Uint8Array | AsyncIterable<Uint8Array> | { path: string }

export interface CapsuleStoreProgressOptions {
  /** Called with the number of bytes handled so far. */
  onProgress?: (bytes: number) => void
  /**
   * `get`: called as the fetch meets the network, with the distinct peers asked for the
   * content so far (bitswap want-lists sent) and the blocks received from peers. Lets a caller
   * show that a fetch is alive while no byte has arrived yet.
   */
  onNetwork?: (progress: FetchNetworkProgress) => void
  signal?: AbortSignal
}

/** What a fetch has done on the network so far (see {@link CapsuleStoreProgressOptions}). */
export interface FetchNetworkProgress {
  /** Distinct peers sent a want-list for this content. */
  peersAsked: number
  /** Blocks received from peers. */
  blocksReceived: number
}

/** Turns helia's progress events (bitswap want-lists, blocks) into {@link FetchNetworkProgress}. */
function networkProgress(
  onNetwork: (progress: FetchNetworkProgress) => void,
): (event: { type: string; detail?: unknown }) => void {
  const asked = new Set<string>()
  let blocksReceived = 0
  return (event) => {
    if (event.type === 'bitswap:send-wantlist') asked.add(String(event.detail))
    else if (event.type === 'bitswap:block') blocksReceived++
    else return
    onNetwork({ peersAsked: asked.size, blocksReceived })
  }
}

export interface CapsuleStore {
  /** Stores the bytes and returns their CID (string form). The same bytes give the same CID. */
  put(source: CapsuleSource, options?: CapsuleStoreProgressOptions): Promise<string>
  /**
   * Streams the bytes of `cid`, fetching from peers if they are not local.
   * @throws {InvalidCidError} for a malformed CID (on first iteration).
   * @throws {CapsuleStoreError} if the content cannot be fetched (aborted, not found).
   */
  get(cid: string, options?: CapsuleStoreProgressOptions): AsyncIterable<Uint8Array>
  /** `true` if the content's root block is held locally (no network). */
  has(cid: string): Promise<boolean>
  /** Pins the content (and fetches whatever is missing), so garbage collection keeps it. */
  pin(cid: string, options?: { signal?: AbortSignal }): Promise<void>
}

/**
 * Parses a CID string.
 * @throws {InvalidCidError} when it is not one.
 */
export function parseCid(cid: string): CID {
  if (typeof cid !== 'string' || cid.length === 0 || cid.length > 256) {
    throw new InvalidCidError('Not a CID string', {
      details: { length: typeof cid === 'string' ? cid.length : typeof cid },
    })
  }
  try {
    return CID.parse(cid)
  } catch (cause) {
    throw new InvalidCidError('Not a CID string', { cause, details: { cid: cid.slice(0, 80) } })
  }
}

async function* counted(
  source: AsyncIterable<Uint8Array>,
  onProgress: ((bytes: number) => void) | undefined,
): AsyncGenerator<Uint8Array> {
  let total = 0
  for await (const chunk of source) {
    total += chunk.byteLength
    onProgress?.(total)
    yield chunk
  }
}

function toStream(source: CapsuleSource): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) {
    return (async function* () {
      yield source
    })()
  }
  if (typeof source !== 'object' || source === null) {
    throw new CapsuleStoreError('Unsupported source for put', {
      details: { type: typeof source },
      hint: 'Pass a Uint8Array, an AsyncIterable<Uint8Array> or { path }.',
    })
  }
  if (typeof (source as { path?: unknown }).path === 'string') {
    return createReadStream((source as { path: string }).path, { highWaterMark: 1024 * 1024 })
  }
  if (Symbol.asyncIterator in (source as object)) return source as AsyncIterable<Uint8Array>
  throw new CapsuleStoreError('Unsupported source for put', {
    details: { type: typeof source },
    hint: 'Pass a Uint8Array, an AsyncIterable<Uint8Array> or { path }.',
  })
}

/** Chunk size of the UnixFS import: 1 MiB. */
export const UNIXFS_CHUNK_SIZE = 1_048_576
/** Most links in one UnixFS file node of the balanced DAG. */
export const UNIXFS_MAX_LINKS = 1024

/**
 * How capsule bytes become a CID (capsule-core SPEC §9): the IPIP-499 `unixfs-v1-2025`
 * profile for a single file. CIDv1, sha2-256, 1 MiB fixed-size chunks as raw leaves, a
 * balanced DAG of at most 1024 links per dag-pb node, a one-chunk file is its raw leaf.
 * Written out here instead of taken from the library's defaults, which change between
 * versions and would change every CID with them. `ipfs-car pack --no-wrap` and kubo's
 * `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576 --max-file-links=1024`
 * give the same CID (test/cid-interop.test.ts).
 */
export function capsuleImportOptions() {
  return {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: UNIXFS_CHUNK_SIZE }),
    layout: balanced({ maxChildrenPerNode: UNIXFS_MAX_LINKS }),
  } as const
}

/**
 * A `CapsuleStore` on helia: UnixFS files with {@link capsuleImportOptions}, fetched over
 * bitswap.
 *
 * @example
 * ```ts
 * const store = heliaCapsuleStore(node.helia)
 * const cid = await store.put({ path: 'photo.capsule' }, { onProgress: (n) => bar.update(n) })
 * for await (const chunk of store.get(cid)) out.write(chunk)
 * ```
 */
export function heliaCapsuleStore(helia: Helia): CapsuleStore {
  const fs = unixfs(helia)
  return {
    async put(source, options = {}) {
      const stream = toStream(source)
      try {
        const cid = await fs.addByteStream(counted(stream, options.onProgress), {
          ...capsuleImportOptions(),
          ...(options.signal ? { signal: options.signal } : {}),
        })
        return cid.toString()
      } catch (cause) {
        if (cause instanceof CapsuleStoreError) throw cause
        throw new CapsuleStoreError('Cannot store the capsule', {
          cause,
          details: { reason: (cause as Error)?.name },
        })
      }
    },
    get(cid, options = {}) {
      return (async function* () {
        const parsed = parseCid(cid)
        try {
          yield* counted(
            fs.cat(parsed, {
              ...(options.signal ? { signal: options.signal } : {}),
              ...(options.onNetwork ? { onProgress: networkProgress(options.onNetwork) } : {}),
            }),
            options.onProgress,
          )
        } catch (cause) {
          throw new CapsuleStoreError('Cannot fetch the capsule', {
            cause,
            details: { cid, reason: (cause as Error)?.name },
            hint: options.signal?.aborted
              ? 'The fetch was aborted.'
              : 'Is a peer holding it connected?',
          })
        }
      })()
    },
    async has(cid) {
      return helia.blockstore.has(parseCid(cid))
    },
    async pin(cid, options = {}) {
      const parsed = parseCid(cid)
      if (await helia.pins.isPinned(parsed)) return
      try {
        for await (const _ of helia.pins.add(
          parsed,
          options.signal ? { signal: options.signal } : {},
        )) {
          // drain: each yielded CID is a block now pinned
        }
      } catch (cause) {
        throw new CapsuleStoreError('Cannot pin the capsule', {
          cause,
          details: { cid, reason: (cause as Error)?.name },
        })
      }
    },
  }
}
