import { InvalidArgumentError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  createRateLimiter,
  createReplayCache,
  RetryExhaustedError,
  retryWithBackoff,
  WireAbortedError,
} from '../src/index.ts'

function clock(start = 0) {
  let t = start
  return { now: () => t, advance: (ms: number) => (t += ms) }
}

describe('createRateLimiter', () => {
  it('allows a burst of `capacity`, then refuses with retryAfterMs, then refills', () => {
    const c = clock()
    const limiter = createRateLimiter({ capacity: 3, refillPerSecond: 2 })({ now: c.now })
    expect([1, 2, 3].map(() => limiter.take('peerA').allowed)).toEqual([true, true, true])
    const refused = limiter.take('peerA')
    expect(refused).toEqual({ allowed: false, retryAfterMs: 500 })
    // another peer has its own bucket
    expect(limiter.take('peerB').allowed).toBe(true)
    c.advance(499)
    expect(limiter.take('peerA').allowed).toBe(false)
    c.advance(1)
    expect(limiter.take('peerA')).toEqual({ allowed: true, remaining: 0 })
    c.advance(60_000)
    expect(limiter.take('peerA')).toEqual({ allowed: true, remaining: 2 })
  })

  it('keeps at most maxKeys buckets, dropping the least recently used', () => {
    const limiter = createRateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 2 })({
      now: clock().now,
    })
    limiter.take('a')
    limiter.take('b')
    limiter.take('a')
    limiter.take('c')
    expect(limiter.size).toBe(2)
    // 'b' was evicted: it starts again from a full bucket; 'a' is still empty
    expect(limiter.take('b').allowed).toBe(true)
    expect(limiter.take('c').allowed).toBe(false)
    limiter.reset('c')
    expect(limiter.take('c').allowed).toBe(true)
  })

  it('rejects bad settings', () => {
    expect(() => createRateLimiter({ capacity: 0, refillPerSecond: 1 })).toThrow(
      InvalidArgumentError,
    )
    expect(() => createRateLimiter({ capacity: 1, refillPerSecond: Number.NaN })).toThrow(
      InvalidArgumentError,
    )
    expect(() => createRateLimiter({ capacity: 1, refillPerSecond: 1 })().take('a', 2)).toThrow(
      InvalidArgumentError,
    )
  })
})

describe('createReplayCache', () => {
  it('says fresh once, replayed after, and forgets after expiry', () => {
    const c = clock(1_000_000)
    const cache = createReplayCache({ maxEntries: 10 })({ now: c.now })
    const nonce = new Uint8Array(32).fill(5)
    expect(cache.check(nonce, 1_060_000)).toBe('fresh')
    expect(cache.check(nonce, 1_060_000)).toBe('replayed')
    expect(cache.check(Buffer.from(nonce).toString('hex'), 1_060_000)).toBe('replayed')
    expect(cache.has(nonce)).toBe(true)
    c.advance(60_000)
    expect(cache.has(nonce)).toBe(false)
    expect(cache.check(nonce, 1_060_000)).toBe('expired')
    expect(cache.check(nonce, c.now() + 1_000_000)).toBe('too-far')
  })

  it('never evicts a live nonce: full means full, expired ones are purged first', () => {
    const c = clock(0)
    const cache = createReplayCache({ maxEntries: 2, maxTtlMs: 1000 })({ now: c.now })
    expect(cache.check('a', 100)).toBe('fresh')
    expect(cache.check('b', 1000)).toBe('fresh')
    expect(cache.check('c', 1000)).toBe('full')
    expect(cache.check('a', 100)).toBe('replayed')
    c.advance(100)
    expect(cache.check('c', 1000)).toBe('fresh')
    expect(cache.size).toBe(2)
    expect(cache.check('b', 1000)).toBe('replayed')
  })

  it('answers a full cache without scanning it: a flood of new keys costs O(1) each', () => {
    const c = clock(0)
    const n = 100_000
    const cache = createReplayCache({ maxEntries: n, maxTtlMs: 600_000 })({ now: c.now })
    for (let i = 0; i < n; i++) cache.check(`k${i}`, 500_000 + i)
    // 20 000 refusals on a full cache of 100 000 keys against the same on a full cache of
    // 100 keys, timed in the same process (a ratio, so the box's load cancels out): the old
    // per-request scan walked every key, so it took about 1000× as long on the large cache.
    const small = createReplayCache({ maxEntries: 100, maxTtlMs: 600_000 })({ now: c.now })
    for (let i = 0; i < 100; i++) small.check(`k${i}`, 500_000 + i)
    const refuse = (target: typeof cache): number => {
      const started = performance.now()
      for (let i = 0; i < 20_000; i++) expect(target.check(`x${i}`, 600_000)).toBe('full')
      return performance.now() - started
    }
    const best = (target: typeof cache): number =>
      Math.min(refuse(target), refuse(target), refuse(target))
    expect(best(cache) / best(small)).toBeLessThan(20)
    // Once the earliest key expires, a slot frees again.
    c.advance(500_000)
    expect(cache.check('late', 600_000)).toBe('fresh')
    expect(cache.check('k1', 500_001)).toBe('replayed')
  })

  it('rejects bad settings and keys', () => {
    expect(() => createReplayCache({ maxEntries: 0 })).toThrow(InvalidArgumentError)
    const cache = createReplayCache({ maxEntries: 1 })()
    expect(() => cache.check(42 as unknown as string, Date.now() + 1000)).toThrow(
      InvalidArgumentError,
    )
    expect(() => cache.check('k', Number.NaN)).toThrow(InvalidArgumentError)
  })
})

describe('retryWithBackoff', () => {
  it('retries until success with growing, jittered waits', async () => {
    const waits: number[] = []
    let calls = 0
    const result = await retryWithBackoff(
      async ({ attempt }) => {
        calls++
        if (attempt < 3) throw new Error('not yet')
        return 'acked'
      },
      {
        until: Date.now() + 10_000,
        base: 4,
        max: 10,
        random: () => 0.999,
        onRetry: (_e, _a, delay) => waits.push(delay),
      },
    )
    expect(result).toBe('acked')
    expect(calls).toBe(4)
    expect(waits).toEqual([3, 7, 9])
  })

  it('gives up with RETRY_EXHAUSTED when the deadline passes, keeping the last error', async () => {
    const last = new Error('executor unreachable')
    let calls = 0
    // A clock that moves 20 ms per attempt: the outcome does not depend on the box's load.
    let t = 1_000
    const err = await retryWithBackoff(
      async () => {
        calls++
        t += 20
        throw last
      },
      { until: 1_060, base: 10, max: 20, now: () => t, random: () => 0.5 },
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RetryExhaustedError)
    expect((err as RetryExhaustedError).code).toBe('RETRY_EXHAUSTED')
    expect((err as RetryExhaustedError).cause).toBe(last)
    expect(calls).toBeGreaterThan(1)
  })

  it('stops at once for errors retryIf rejects, and on abort', async () => {
    const permanent = new Error('unknown-grant')
    await expect(
      retryWithBackoff(
        async () => {
          throw permanent
        },
        { until: Date.now() + 10_000, retryIf: (e) => e !== permanent },
      ),
    ).rejects.toBe(permanent)

    const controller = new AbortController()
    const pending = retryWithBackoff(
      async () => {
        throw new Error('again')
      },
      { until: Date.now() + 60_000, base: 5_000, random: () => 0.9, signal: controller.signal },
    )
    setTimeout(() => controller.abort(), 20)
    await expect(pending).rejects.toBeInstanceOf(WireAbortedError)
    await expect(
      retryWithBackoff(async () => 1, { until: Date.now() + 1000, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'WIRE_ABORTED' })
    await expect(retryWithBackoff(async () => 1, { until: Number.NaN })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
  })
})
