/**
 * Which receivers a capsule names (SPEC §3.4.3 check 11): the receiver keys of the capsule's
 * header, read authentically — the registry gives the capsule's owner and CID, the CID gives
 * the header bytes (content-addressed), and the owner's signature on the header is checked.
 * A result for a capsule whose header does not list this receiver is refused `not-a-receiver`,
 * and so is one whose registered CID holds a header that is not the capsule's (final: the bytes
 * under a CID never change); a header that cannot be read now is `busy` (retried).
 */
import {
  CapsuleTruncatedError,
  equalBytes,
  MAX_HEADER_LENGTH,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
  toHex,
  verifiedCapsuleHeader,
} from '@digicap/capsule-core'
import { ResultHeaderInvalidError } from './errors.ts'

/**
 * Where a receiver learns which receivers a capsule names. `receiversOf` resolves the X25519
 * public keys of the capsule's owner-signed header, or undefined when the registry does not
 * know the capsule. It throws a {@link ResultHeaderInvalidError} when the header was read and
 * is not the capsule's (the receiver answers `not-a-receiver`, final), and anything else when
 * the header cannot be read now (the receiver answers `busy`, retried).
 */
export interface ResultCapsuleSource {
  receiversOf(
    capsuleId: Uint8Array,
    signal?: AbortSignal,
  ): Promise<readonly Uint8Array[] | undefined>
}

/** A capsule as the CapsuleRegistry lists it (the fields this needs). */
export interface ResultCapsuleRecord {
  /** The owner's address: the header must be signed by it. */
  readonly owner: string
  /** The CID of the capsule's bytes. */
  readonly cid: string
}

/** The CapsuleRegistry, read: `getCapsule(capsuleId)`, undefined when unknown. */
export interface ResultCapsuleRegistry {
  getCapsule(capsuleId: Uint8Array): Promise<ResultCapsuleRecord | undefined>
}

/** Where a capsule's bytes are read from by CID (a `CapsuleStore` of `@digicap/p2p` fits). */
export interface ResultCapsuleStore {
  get(cid: string, options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
}

export interface HeaderResultCapsulesInit {
  readonly registry: ResultCapsuleRegistry
  readonly store: ResultCapsuleStore
  /**
   * Capsules whose answer is remembered, one per capsule id (least recently used forgotten
   * first; an answer for content the registry no longer names is dropped). Default 1024.
   */
  readonly cacheSize?: number | undefined
  /**
   * Time to read a header, ms (the capsule is fetched from connected peers — the delivering
   * executor holds it): past it the delivery is refused `busy` and retried. Default 5000.
   */
  readonly readTimeoutMs?: number | undefined
}

/** {@link headerResultCapsules}'s source, with a look at what it keeps. */
export interface HeaderResultCapsules extends ResultCapsuleSource {
  /** Capsules whose answer is kept now: at most `cacheSize`, one per capsule id. */
  cached(): number
}

/** Most bytes read before the header must have parsed (preamble + largest header + signature). */
const MAX_PREFIX = MAX_HEADER_LENGTH + 1024

/**
 * A {@link ResultCapsuleSource} over the registry and a store: reads the header prefix of the
 * registered CID (at most 65 KiB), checks that it is signed by the registered owner and names
 * the capsule asked for, and remembers one answer per capsule id, used while the registry names
 * the same owner and CID (read at each delivery) and dropped once it names others.
 *
 * @example
 * ```ts
 * const capsules = headerResultCapsules({ registry: chain, store })
 * const receiver = createResultReceiver({ privateKey })({ libp2p, store, grants, capsules })
 * ```
 */
export function headerResultCapsules(init: HeaderResultCapsulesInit): HeaderResultCapsules {
  const capacity = init.cacheSize ?? 1024
  const readTimeoutMs = init.readTimeoutMs ?? 5000
  /**
   * One answer per capsule id, for the owner and CID the registry named when it was read: the
   * header's receivers, or why the header is not the capsule's (final). Least recently used
   * first, at most `capacity`; an answer for an owner or CID the registry no longer names is
   * dropped as soon as a delivery sees the new one (a header never changes under its CID, but
   * the registry's CID does, with `updateContent`).
   */
  const cache = new Map<
    string,
    { readonly source: string; readonly answer: readonly Uint8Array[] | ResultHeaderInvalidError }
  >()
  /** Header reads in flight, by the same key: deliveries of one capsule at once read it once. */
  const reading = new Map<string, Promise<readonly Uint8Array[]>>()
  const keep = (
    id: string,
    source: string,
    answer: readonly Uint8Array[] | ResultHeaderInvalidError,
  ) => {
    // A read that began before the registry moved on may put its answer here after a newer
    // one: the next delivery sees the registry's source differ and drops it.
    cache.delete(id)
    cache.set(id, { source, answer })
    if (cache.size > capacity) cache.delete(cache.keys().next().value as string)
  }
  return {
    async receiversOf(capsuleId, signal) {
      // The registry is read for every delivery, and answers are kept by what it says now: after
      // the owner's updateContent (a new CID) or a transfer the header is read again, so a
      // receiver the new header drops is refused at once, not after a restart.
      const record = await init.registry.getCapsule(capsuleId)
      const id = toHex(capsuleId)
      if (record === undefined) {
        cache.delete(id)
        return undefined
      }
      const source = `${record.owner.toLowerCase()}:${record.cid}`
      const key = `${id}:${source}`
      const hit = cache.get(id)
      if (hit !== undefined) {
        if (hit.source === source) {
          cache.delete(id) // most recently used last
          cache.set(id, hit)
          if (hit.answer instanceof ResultHeaderInvalidError) throw hit.answer
          return hit.answer
        }
        cache.delete(id) // the registry names new content (or a new owner): the old answer goes
      }
      let read = reading.get(key)
      if (read === undefined) {
        read = (async () => {
          const deadline = AbortSignal.timeout(readTimeoutMs)
          const details = { capsuleId: id, cid: record.cid.slice(0, 128) }
          try {
            // Only a store failure or the deadline leaves readHeader as anything else: busy.
            const parsed = await readHeader(
              init.store,
              record.cid,
              signal === undefined ? deadline : AbortSignal.any([signal, deadline]),
              details,
            )
            try {
              verifiedCapsuleHeader(parsed, { owner: record.owner as `0x${string}` })
            } catch (cause) {
              throw new ResultHeaderInvalidError(
                'The registered capsule header is not signed by its owner',
                { details: { ...details, why: 'signer' }, cause },
              )
            }
            if (!equalBytes(parsed.header.capsuleId, capsuleId)) {
              throw new ResultHeaderInvalidError('The registered CID holds another capsule', {
                details: { ...details, why: 'capsule-id' },
              })
            }
            const keys = Object.freeze(parsed.header.receivers.map((r) => r.publicKey.slice()))
            keep(id, source, keys)
            return keys
          } catch (err) {
            // The bytes under a CID never change: a bad header stays bad, and is not read again.
            if (err instanceof ResultHeaderInvalidError) keep(id, source, err)
            throw err
          }
        })().finally(() => reading.delete(key))
        reading.set(key, read)
      }
      return read
    },
    cached: () => cache.size,
  }
}

async function readHeader(
  store: ResultCapsuleStore,
  cid: string,
  signal: AbortSignal | undefined,
  details: { capsuleId: string; cid: string },
): Promise<ParsedCapsuleHeader> {
  const parts: Uint8Array[] = []
  let length = 0
  const ac = new AbortController()
  const both = signal === undefined ? ac.signal : AbortSignal.any([signal, ac.signal])
  try {
    for await (const chunk of store.get(cid, { signal: both })) {
      parts.push(chunk)
      length += chunk.byteLength
      const head = new Uint8Array(Math.min(length, MAX_PREFIX))
      let at = 0
      for (const p of parts) {
        const n = Math.min(p.byteLength, head.length - at)
        head.set(p.subarray(0, n), at)
        at += n
        if (at === head.length) break
      }
      try {
        return parseCapsuleHeader(head)
      } catch (err) {
        if (!(err instanceof CapsuleTruncatedError) || length >= MAX_PREFIX) {
          throw new ResultHeaderInvalidError(
            'The registered CID does not start with a capsule header',
            { details: { ...details, why: 'format' }, cause: err },
          )
        }
      }
    }
  } finally {
    ac.abort()
  }
  // A store that ends its stream quietly when its signal fires has not given the whole file.
  signal?.throwIfAborted()
  // The store gave the whole content of the CID (a content-addressed file), and it is shorter.
  throw new ResultHeaderInvalidError('The registered capsule ends before its header does', {
    details: { ...details, why: 'truncated', bytes: length },
  })
}
