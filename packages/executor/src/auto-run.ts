/**
 * The auto-runner: runs capsules announced on the gossip topic, with every resource bounded
 * so that announcement spam cannot exhaust the node. Announcements for another chain or
 * registry are ignored; each announcer has a rate limit; the `seen` set is a bounded LRU;
 * the queue holds at most `maxQueued` runs (more are dropped, not buffered); runs go one at
 * a time by default.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import {
  type CapsuleAnnouncement,
  type DigicapNode,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p/light'
import type { Executor, RunCapsuleOptions, RunCapsuleResult } from './executor.ts'

/** Why an announcement was not queued. */
export type AutoRunIgnoreReason =
  | 'other-chain'
  | 'other-registry'
  | 'duplicate'
  | 'rate-limited'
  | 'queue-full'
  | 'stopped'

/** What the auto-runner did; for logs and tests. */
export type AutoRunEvent =
  | { type: 'queued'; cid: string; from: string; queued: number }
  | { type: 'ignored'; cid: string; from: string; reason: AutoRunIgnoreReason }
  | { type: 'ran'; cid: string; result: RunCapsuleResult }
  | { type: 'failed'; cid: string; error: unknown }

export interface AutoRunnerInit {
  /** Only announcements for this EIP-155 chain id run. */
  readonly chainId: number
  /** Only announcements naming this CapsuleRegistry address run (case-insensitive). */
  readonly registry: string
  /** Most runs waiting (not counting running ones); more are dropped. Default 32. */
  readonly maxQueued?: number | undefined
  /** Most CIDs remembered as seen (LRU). Default 4096. */
  readonly maxSeen?: number | undefined
  /** Announcements accepted per announcer per window. Default 10. */
  readonly perAnnouncerLimit?: number | undefined
  /** The rate-limit window, ms. Default 60 s. */
  readonly perAnnouncerWindowMs?: number | undefined
  /** Most announcers tracked for rate limiting (LRU). Default 1024. */
  readonly maxAnnouncers?: number | undefined
  /** Runs at once. Default 1. */
  readonly concurrency?: number | undefined
  /** Options of each run. */
  readonly runOptions?: RunCapsuleOptions | undefined
  /** Told of every decision and outcome (must not throw; errors are swallowed). */
  readonly onEvent?: ((e: AutoRunEvent) => void) | undefined
}

export interface AutoRunnerComponents {
  readonly node: Pick<DigicapNode, 'libp2p'>
  readonly executor: Pick<Executor, 'runCapsule'>
}

export interface AutoRunnerStats {
  readonly queued: number
  readonly running: number
  readonly seen: number
  readonly announcers: number
}

export interface AutoRunner {
  /** Subscribes to the announcement topic. */
  start(): void
  /** Unsubscribes, drops what is queued and waits for the running runs. */
  stop(): Promise<void>
  /** Considers one announcement (what the subscription calls); returns whether it was queued. */
  offer(ann: CapsuleAnnouncement, from: string): boolean
  stats(): AutoRunnerStats
}

function positive(name: string, v: number | undefined, fallback: number): number {
  const n = v ?? fallback
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer`, { details: { [name]: n } })
  }
  return n
}

/**
 * Creates an auto-runner.
 *
 * @example
 * ```ts
 * const auto = autoRunner({ chainId: 31337, registry })({ node, executor })
 * auto.start()
 * // … later
 * await auto.stop()
 * ```
 */
export function autoRunner(init: AutoRunnerInit) {
  const maxQueued = positive('maxQueued', init.maxQueued, 32)
  const maxSeen = positive('maxSeen', init.maxSeen, 4096)
  const perAnnouncer = positive('perAnnouncerLimit', init.perAnnouncerLimit, 10)
  const windowMs = positive('perAnnouncerWindowMs', init.perAnnouncerWindowMs, 60_000)
  const maxAnnouncers = positive('maxAnnouncers', init.maxAnnouncers, 1024)
  const concurrency = positive('concurrency', init.concurrency, 1)
  const registry = init.registry.toLowerCase()

  return (components: AutoRunnerComponents): AutoRunner => {
    const seen = new Map<string, true>()
    const announcers = new Map<string, { start: number; count: number }>()
    const queue: CapsuleAnnouncement[] = []
    const running = new Set<Promise<void>>()
    let unsubscribe: (() => void) | undefined
    let stopped = false

    const emit = (e: AutoRunEvent): void => {
      try {
        init.onEvent?.(e)
      } catch {
        // an observer must not break the runner
      }
    }

    const allow = (from: string): boolean => {
      const now = Date.now()
      let w = announcers.get(from)
      if (w === undefined || now - w.start >= windowMs) w = { start: now, count: 0 }
      announcers.delete(from)
      announcers.set(from, w)
      while (announcers.size > maxAnnouncers) {
        const oldest = announcers.keys().next().value
        if (oldest === undefined) break
        announcers.delete(oldest)
      }
      if (w.count >= perAnnouncer) return false
      w.count++
      return true
    }

    const remember = (cid: string): void => {
      seen.set(cid, true)
      while (seen.size > maxSeen) {
        const oldest = seen.keys().next().value
        if (oldest === undefined) break
        seen.delete(oldest)
      }
    }

    const pump = (): void => {
      while (!stopped && running.size < concurrency && queue.length > 0) {
        const ann = queue.shift()
        if (ann === undefined) break
        const p = components.executor
          .runCapsule(ann.cid, init.runOptions ?? {})
          .then(
            (result) => emit({ type: 'ran', cid: ann.cid, result }),
            (error: unknown) => emit({ type: 'failed', cid: ann.cid, error }),
          )
          .finally(() => {
            running.delete(p)
            pump()
          })
        running.add(p)
      }
    }

    const offer = (ann: CapsuleAnnouncement, from: string): boolean => {
      const ignore = (reason: AutoRunIgnoreReason): false => {
        emit({ type: 'ignored', cid: ann.cid, from, reason })
        return false
      }
      if (stopped) return ignore('stopped')
      if (ann.chainId !== init.chainId) return ignore('other-chain')
      if (ann.registry.toLowerCase() !== registry) return ignore('other-registry')
      if (seen.has(ann.cid)) {
        seen.delete(ann.cid)
        seen.set(ann.cid, true)
        return ignore('duplicate')
      }
      if (!allow(from)) return ignore('rate-limited')
      if (queue.length >= maxQueued) return ignore('queue-full')
      remember(ann.cid)
      queue.push(ann)
      emit({ type: 'queued', cid: ann.cid, from, queued: queue.length })
      pump()
      return true
    }

    return {
      start() {
        if (unsubscribe !== undefined) return
        stopped = false
        unsubscribe = subscribeCapsuleAnnouncements(components.node, (ann, from) =>
          offer(ann, from),
        )
      },
      async stop() {
        stopped = true
        unsubscribe?.()
        unsubscribe = undefined
        for (const ann of queue.splice(0)) {
          emit({ type: 'ignored', cid: ann.cid, from: '', reason: 'stopped' })
        }
        await Promise.allSettled([...running])
      },
      offer,
      stats: () => ({
        queued: queue.length,
        running: running.size,
        seen: seen.size,
        announcers: announcers.size,
      }),
    }
  }
}
