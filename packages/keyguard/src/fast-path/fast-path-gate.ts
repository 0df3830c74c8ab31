/**
 * Small concurrency parts of the fast path: a keyed lock (one evaluation per capsule or
 * executor at a time), a counting semaphore (sealer unwraps at once) and the set of audits that
 * are granted but not yet on chain, keyed the same way.
 */

/** Runs tasks one at a time per key; a task holding several keys takes them in the given order. */
export interface KeyedLock {
  run<T>(keys: readonly string[], task: () => Promise<T>): Promise<T>
}

export function createKeyedLock(): KeyedLock {
  const tails = new Map<string, Promise<void>>()
  async function acquire(key: string): Promise<() => void> {
    const prev = tails.get(key) ?? Promise.resolve()
    let release = (): void => {}
    const mine = new Promise<void>((r) => {
      release = r
    })
    const tail = prev.then(() => mine)
    tails.set(key, tail)
    await prev
    return () => {
      release()
      if (tails.get(key) === tail) tails.delete(key)
    }
  }
  return {
    async run(keys, task) {
      const releases: (() => void)[] = []
      try {
        for (const key of keys) releases.push(await acquire(key))
        return await task()
      } finally {
        for (const release of releases.reverse()) release()
      }
    },
  }
}

/** At most `limit` tasks at once; the rest wait in call order. */
export interface Semaphore {
  run<T>(task: () => Promise<T>): Promise<T>
}

export function createSemaphore(limit: number): Semaphore {
  let active = 0
  const waiting: (() => void)[] = []
  return {
    async run(task) {
      if (active >= limit) await new Promise<void>((r) => waiting.push(r))
      else active++
      try {
        return await task()
      } finally {
        const next = waiting.shift()
        if (next === undefined) active--
        else next()
      }
    },
  }
}

/** Audits granted but not yet on chain, counted per gate key. */
export interface PendingAudits {
  add(id: string, keys: readonly string[]): void
  has(id: string): boolean
  /** Whether an audit holding any of `keys` is not on chain yet. */
  busy(keys: readonly string[]): boolean
  /** The audit is on chain (or definitively reverted). */
  settle(id: string): void
  /**
   * Resolves `true` once no audit holds any of `keys`, `false` at `deadline` (performance.now()),
   * also when the deadline has already passed (a request that queued that long is answered `busy`
   * rather than granted after its exchange may have timed out).
   */
  waitIdle(keys: readonly string[], deadline: number): Promise<boolean>
}

export function createPendingAudits(): PendingAudits {
  const byId = new Map<string, readonly string[]>()
  const counts = new Map<string, number>()
  const waiters = new Set<() => void>()
  const busy = (keys: readonly string[]) => keys.some((k) => (counts.get(k) ?? 0) > 0)
  return {
    add(id, keys) {
      if (byId.has(id)) return
      byId.set(id, keys)
      for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1)
    },
    has: (id) => byId.has(id),
    busy,
    settle(id) {
      const keys = byId.get(id)
      if (keys === undefined) return
      byId.delete(id)
      for (const k of keys) {
        const n = (counts.get(k) ?? 1) - 1
        if (n > 0) counts.set(k, n)
        else counts.delete(k)
      }
      for (const wake of [...waiters]) wake()
    },
    async waitIdle(keys, deadline) {
      if (performance.now() >= deadline) return false
      while (busy(keys)) {
        const left = deadline - performance.now()
        if (left <= 0) return false
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            clearTimeout(timer)
            waiters.delete(wake)
            resolve()
          }
          const timer = setTimeout(wake, left)
          waiters.add(wake)
        })
      }
      return true
    },
  }
}
