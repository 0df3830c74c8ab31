/**
 * `CapsuleStore`: where capsule bytes live. The interface is apart from its one
 * implementation here (`heliaCapsuleStore`, UnixFS over helia); any other implementation
 * (a kubo node, a plain folder) must pass the same compliance suite.
 */
import type { Helia } from '@helia/interface'
import type { UnixFS } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import { CapsuleStoreError, InvalidCidError } from './errors.ts'
import { WANT_RESENT_EVENT } from './fetch/want-resend.ts'
import { windowedCat } from './fetch/windowed-cat.ts'
import type { CapsuleSource } from './import/chunks.ts'
import type { CapsuleBlockSink } from './import/import-capsule.ts'
import { unixfsReader } from './read/unixfs-reader.ts'

export type { CapsuleSource }

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
  /** Wants sent again because no block came within the resend interval (a lost message). */
  wantsResent: number
}

/** Turns helia's progress events (bitswap want-lists, blocks) into {@link FetchNetworkProgress}. */
function networkProgress(
  onNetwork: (progress: FetchNetworkProgress) => void,
): (event: { type: string; detail?: unknown }) => void {
  const asked = new Set<string>()
  let blocksReceived = 0
  let wantsResent = 0
  return (event) => {
    if (event.type === 'bitswap:send-wantlist') asked.add(String(event.detail))
    else if (event.type === 'bitswap:block') blocksReceived++
    else if (event.type === WANT_RESENT_EVENT) wantsResent++
    else return
    onNetwork({ peersAsked: asked.size, blocksReceived, wantsResent })
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

/**
 * The import reuses each chunk's buffer once `put` resolves, but helia keeps the bytes it is
 * given: a memory blockstore stores the reference, and bitswap sends it to peers that want the
 * block later. Without a copy, every block past the pool's first writes was overwritten by a
 * later chunk, so it no longer hashed to its CID and peers dropped it (a fetch of more than
 * four chunks from a memory-backed node never ended). `new Uint8Array(bytes)` copies; a
 * Buffer's `slice` would not.
 */
function keptBytesSink(helia: Helia): CapsuleBlockSink {
  return { put: (cid, bytes, options) => helia.blockstore.put(cid, new Uint8Array(bytes), options) }
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
  // windowedCat calls `cat` only; the reader does not load the importer (ADR 0042)
  const fs = unixfsReader(helia.blockstore) as UnixFS
  return {
    async put(source, options = {}) {
      // loaded on the first put: a node that only fetches never loads the importer
      const { importCapsule } = await import('./import/import-capsule.ts')
      return (await importCapsule(source, keptBytesSink(helia), options)).toString()
    },
    get(cid, options = {}) {
      return (async function* () {
        const parsed = parseCid(cid)
        try {
          yield* counted(
            windowedCat(fs, parsed, {
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
