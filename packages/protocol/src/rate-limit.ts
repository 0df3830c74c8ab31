/**
 * A per-peer token bucket: each key (a peer id) holds up to `capacity` tokens, refilled at
 * `refillPerSecond`; a request costs one token. The table is bounded: past `maxKeys` the least
 * recently used bucket is dropped (a dropped peer starts again with a full bucket, so keep
 * `maxKeys` above the number of peers you expect to be busy at once).
 */
import { InvalidArgumentError } from '@digicap/capsule-core'

/** Options of {@link createRateLimiter}. */
export interface RateLimiterInit {
  /** Burst size: tokens a fresh bucket holds. */
  capacity: number
  /** Tokens added per second, up to `capacity`. */
  refillPerSecond: number
  /** Most buckets kept at once. Default 10 000. */
  maxKeys?: number
}

/** Components of a rate limiter. */
export interface RateLimiterComponents {
  /** Milliseconds clock. Default `performance.now`. */
  now?: () => number
}

/** The outcome of {@link RateLimiter.take}. */
export type RateDecision =
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterMs: number }

/** A keyed token bucket. */
export interface RateLimiter {
  /** Takes `cost` tokens (default 1) from `key`'s bucket if it has them. */
  take(key: string, cost?: number): RateDecision
  /** Forgets `key` (its next request starts from a full bucket). */
  reset(key: string): void
  /** Buckets currently held. */
  readonly size: number
}

interface Bucket {
  tokens: number
  at: number
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${name} must be a positive number`, {
      details: { [name]: value },
    })
  }
  return value
}

/**
 * Creates a per-peer token-bucket rate limiter.
 *
 * @throws {InvalidArgumentError} for a non-positive capacity, rate or `maxKeys`.
 * @example
 * ```ts
 * const limiter = createRateLimiter({ capacity: 5, refillPerSecond: 1 })()
 * const d = limiter.take(peer.toString())
 * if (!d.allowed) return { status: 'refused', reasonCode: 'rate-limited', retryAfterMs: d.retryAfterMs }
 * ```
 */
export function createRateLimiter(
  init: RateLimiterInit,
): (components?: RateLimiterComponents) => RateLimiter {
  const capacity = positive('capacity', init.capacity)
  const rate = positive('refillPerSecond', init.refillPerSecond) / 1000
  const maxKeys = Math.floor(positive('maxKeys', init.maxKeys ?? 10_000))
  return (components = {}) => {
    const now = components.now ?? (() => performance.now())
    const buckets = new Map<string, Bucket>()

    const refill = (b: Bucket, t: number): void => {
      b.tokens = Math.min(capacity, b.tokens + Math.max(0, t - b.at) * rate)
      b.at = t
    }

    return {
      take(key: string, cost = 1): RateDecision {
        if (!Number.isFinite(cost) || cost <= 0 || cost > capacity) {
          throw new InvalidArgumentError('cost must be in (0, capacity]', { details: { cost } })
        }
        const t = now()
        let bucket = buckets.get(key)
        if (bucket === undefined) {
          bucket = { tokens: capacity, at: t }
        } else {
          buckets.delete(key)
          refill(bucket, t)
        }
        buckets.set(key, bucket)
        if (buckets.size > maxKeys) {
          const oldest = buckets.keys().next().value as string
          buckets.delete(oldest)
        }
        if (bucket.tokens >= cost) {
          bucket.tokens -= cost
          return { allowed: true, remaining: Math.floor(bucket.tokens) }
        }
        return { allowed: false, retryAfterMs: Math.ceil((cost - bucket.tokens) / rate) }
      },
      reset(key: string): void {
        buckets.delete(key)
      },
      get size(): number {
        return buckets.size
      },
    }
  }
}
