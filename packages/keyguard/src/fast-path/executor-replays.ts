/**
 * Fast-path replay memory per registered executor: each executor's `(executor, nonce)` keys
 * live in its own bounded replay cache (`perExecutor` keys), so one executor filling its quota
 * gets `full` (answered `busy`) and no other executor notices. Only requests from a registered
 * executor's own peer with a valid signature reach it, so strangers cost it nothing.
 *
 * Bounded without weakening it: an executor's cache is dropped only once none of its keys is
 * live; past `maxExecutors` caches a new executor gets `full` until one empties.
 */
import { createReplayCache, type ReplayCache, type ReplayVerdict } from '@digicap/protocol'

export interface ExecutorReplaysInit {
  /** Live nonces held per executor. Default 10 000. */
  perExecutor?: number
  /** Executors with live nonces held at once. Default 10 000. */
  maxExecutors?: number
  /** Largest accepted `expiresAt - now`, ms. */
  maxTtlMs: number
}

export interface ExecutorReplays {
  /** The replay verdict of `key` for `executor`; remembers it when fresh. */
  check(executor: string, key: Uint8Array, expiresAtMs: number): ReplayVerdict
  /** Executors with a cache. */
  readonly executors: number
}

export function createExecutorReplays(init: ExecutorReplaysInit): ExecutorReplays {
  const perExecutor = init.perExecutor ?? 10_000
  const maxExecutors = init.maxExecutors ?? 10_000
  const newCache = createReplayCache({ maxEntries: perExecutor, maxTtlMs: init.maxTtlMs })
  const caches = new Map<string, ReplayCache>()

  /** Drops the oldest executor's cache if nothing in it is live any more (one cache per call). */
  function reclaimOne(): void {
    const [oldest, cache] = caches.entries().next().value as [string, ReplayCache]
    cache.purge()
    caches.delete(oldest)
    // Still live: keep it (moved to the back, so the next call looks at another one).
    if (cache.size > 0) caches.set(oldest, cache)
  }

  return {
    check(executor, key, expiresAtMs) {
      let cache = caches.get(executor)
      if (cache === undefined) {
        if (caches.size >= maxExecutors) reclaimOne()
        if (caches.size >= maxExecutors) return 'full'
        cache = newCache()
        caches.set(executor, cache)
      }
      return cache.check(key, expiresAtMs)
    },
    get executors() {
      return caches.size
    },
  }
}
