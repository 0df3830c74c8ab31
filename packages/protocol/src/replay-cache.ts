/**
 * A bounded replay cache for fast-path nonces: remembers each key (e.g. `executor || nonce`)
 * until the request it came with expires.
 *
 * Bounded without weakening it: evicting a key whose request has not expired yet would let
 * that request be replayed, so when the cache is full it first drops expired keys and, if it
 * is still full, refuses the new key (`'full'`, which the keyguard answers with `busy`).
 * `maxTtlMs` caps how far in the future an expiry may lie, so one request cannot pin a slot
 * for long.
 *
 * A full cache answers in O(1): it remembers its earliest expiry and scans for expired keys only
 * once that time has passed, so a flood against a full cache costs no scan per request.
 */
import { InvalidArgumentError, toHex } from '@digicap/capsule-core'

/** Options of {@link createReplayCache}. */
export interface ReplayCacheInit {
  /** Most keys held at once. */
  maxEntries: number
  /** Largest accepted `expiresAt - now`, ms. Default 10 minutes. */
  maxTtlMs?: number
}

/** Components of a replay cache. */
export interface ReplayCacheComponents {
  /** Wall clock in ms since the epoch (expiries are absolute). Default `Date.now`. */
  now?: () => number
}

/**
 * - `fresh`: not seen before; now remembered until it expires.
 * - `replayed`: seen before and not yet expired.
 * - `expired`: `expiresAt` is not in the future.
 * - `too-far`: `expiresAt` is more than `maxTtlMs` away.
 * - `full`: every slot holds a live key; try later.
 */
export type ReplayVerdict = 'fresh' | 'replayed' | 'expired' | 'too-far' | 'full'

/** A bounded set of keys with expiries. */
export interface ReplayCache {
  /** Checks `key` and, if fresh, remembers it until `expiresAtMs`. */
  check(key: Uint8Array | string, expiresAtMs: number): ReplayVerdict
  /** True while `key` is remembered and not expired. */
  has(key: Uint8Array | string): boolean
  /** Drops expired keys; returns how many. */
  purge(): number
  /** Keys currently held (some may have expired but not been purged yet). */
  readonly size: number
}

function keyOf(key: Uint8Array | string): string {
  if (typeof key === 'string') return key
  if (key instanceof Uint8Array) {
    return toHex(key).slice(2)
  }
  throw new InvalidArgumentError('key must be a string or Uint8Array', {
    details: { got: typeof key },
  })
}

/**
 * Creates a bounded replay cache.
 *
 * @throws {InvalidArgumentError} for a non-positive `maxEntries` or `maxTtlMs`.
 * @example
 * ```ts
 * const replays = createReplayCache({ maxEntries: 100_000 })()
 * switch (replays.check(concat(req.executor, req.nonce), Number(req.expiresAt) * 1000)) {
 *   case 'replayed': return { status: 'refused', reasonCode: 'replayed' }
 * }
 * ```
 */
export function createReplayCache(
  init: ReplayCacheInit,
): (components?: ReplayCacheComponents) => ReplayCache {
  const maxEntries = init.maxEntries
  const maxTtlMs = init.maxTtlMs ?? 600_000
  if (!Number.isSafeInteger(maxEntries) || maxEntries <= 0) {
    throw new InvalidArgumentError('maxEntries must be a positive integer', {
      details: { maxEntries },
    })
  }
  if (!Number.isFinite(maxTtlMs) || maxTtlMs <= 0) {
    throw new InvalidArgumentError('maxTtlMs must be positive', { details: { maxTtlMs } })
  }
  return (components = {}) => {
    const now = components.now ?? Date.now
    const entries = new Map<string, number>()
    /** No key expires before this (ms); a scan before it would find nothing. */
    let earliest = Number.POSITIVE_INFINITY

    const purge = (): number => {
      const t = now()
      if (t < earliest) return 0
      let dropped = 0
      earliest = Number.POSITIVE_INFINITY
      for (const [k, expiry] of entries) {
        if (expiry <= t) {
          entries.delete(k)
          dropped++
        } else if (expiry < earliest) earliest = expiry
      }
      return dropped
    }

    return {
      check(key, expiresAtMs) {
        if (typeof expiresAtMs !== 'number' || Number.isNaN(expiresAtMs)) {
          throw new InvalidArgumentError('expiresAtMs must be a number', {
            details: { got: typeof expiresAtMs },
          })
        }
        const k = keyOf(key)
        const t = now()
        if (expiresAtMs <= t) return 'expired'
        if (expiresAtMs - t > maxTtlMs) return 'too-far'
        const seen = entries.get(k)
        if (seen !== undefined && seen > t) return 'replayed'
        if (seen !== undefined) entries.delete(k)
        if (entries.size >= maxEntries && purge() === 0 && entries.size >= maxEntries) {
          return 'full'
        }
        entries.set(k, expiresAtMs)
        if (expiresAtMs < earliest) earliest = expiresAtMs
        return 'fresh'
      },
      has(key) {
        const seen = entries.get(keyOf(key))
        return seen !== undefined && seen > now()
      },
      purge,
      get size() {
        return entries.size
      },
    }
  }
}
