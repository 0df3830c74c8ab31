/**
 * "Retry until acknowledged or the grant expires": exponential backoff with full jitter,
 * bounded by an absolute deadline and an `AbortSignal`.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import { RetryExhaustedError, WireAbortedError } from './errors.ts'

/** What each attempt is told. */
export interface RetryAttempt {
  /** 0 for the first attempt. */
  attempt: number
  /** Milliseconds left before the deadline: use it to bound the attempt (e.g. `timeout`). */
  remainingMs: number
  /** The caller's signal, if any. */
  signal: AbortSignal | undefined
}

/** Options of {@link retryWithBackoff}. */
export interface RetryOptions {
  /** Absolute deadline (ms since the epoch, or a Date): no attempt starts after it. */
  until: number | Date
  /** First backoff ceiling, ms. Default 250. */
  base?: number
  /** Largest backoff ceiling, ms. Default 30 000. */
  max?: number
  signal?: AbortSignal
  /** Return false for errors that retrying cannot fix; they are rethrown at once. */
  retryIf?: (error: unknown) => boolean
  /** Told before each wait. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void
  /** Components, for tests: clock (ms since the epoch) and jitter source in [0, 1). */
  now?: () => number
  random?: () => number
}

const isAborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new WireAbortedError('Retry aborted', { cause: signal?.reason }))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Calls `fn` until it resolves, waiting `random() * min(max, base * 2^n)` ms after the n-th
 * failure, and gives up when the next attempt would start after `until`.
 *
 * @throws {RetryExhaustedError} when the deadline passes; the last failure is its `cause`.
 * @throws {WireAbortedError} if `signal` fires.
 * @throws whatever `fn` threw, when `retryIf` returns false for it.
 * @example
 * ```ts
 * const ack = await retryWithBackoff(
 *   ({ remainingMs }) => request(libp2p, executor, keyReleaseProtocol, release, { timeout: Math.min(remainingMs, 5000) }),
 *   { until: Number(grant.expiresAt) * 1000 },
 * )
 * ```
 */
export async function retryWithBackoff<T>(
  fn: (attempt: RetryAttempt) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const until = options.until instanceof Date ? options.until.getTime() : options.until
  const base = options.base ?? 250
  const max = options.max ?? 30_000
  if (!Number.isFinite(until) || !(base > 0) || !(max >= base)) {
    throw new InvalidArgumentError('retryWithBackoff needs a finite deadline and 0 < base <= max', {
      details: { until, base, max },
    })
  }
  const now = options.now ?? Date.now
  const random = options.random ?? Math.random
  const signal = options.signal
  let lastError: unknown
  for (let attempt = 0; ; attempt++) {
    if (isAborted(signal)) {
      throw new WireAbortedError('Retry aborted', { cause: signal?.reason })
    }
    const remainingMs = until - now()
    if (remainingMs <= 0) {
      throw new RetryExhaustedError('Gave up: the deadline passed', {
        details: { attempts: attempt },
        cause: lastError,
      })
    }
    try {
      return await fn({ attempt, remainingMs, signal })
    } catch (err) {
      if (isAborted(signal)) {
        throw new WireAbortedError('Retry aborted', { cause: err })
      }
      if (options.retryIf !== undefined && !options.retryIf(err)) throw err
      lastError = err
    }
    const delay = Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 30)))
    if (now() + delay >= until) {
      throw new RetryExhaustedError('Gave up: the deadline passes before the next attempt', {
        details: { attempts: attempt + 1 },
        cause: lastError,
      })
    }
    options.onRetry?.(lastError, attempt, delay)
    await sleep(delay, signal)
  }
}
