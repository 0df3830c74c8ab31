/**
 * The auto-runner: runs capsules announced on the gossip topic, with every resource bounded
 * so that announcement spam cannot exhaust the node. Announcements for another chain or
 * registry are ignored; each announcer has a rate limit; the `seen` set is a bounded LRU;
 * the queue holds at most `maxQueued` runs (more are dropped, not buffered); runs go one at
 * a time by default. Announcements are not signed: with the chain given, an announcement runs
 * only if the registry lists its capsule id with its CID and owner, not revoked (ADR 0090).
 */
import { hexToBytes, InvalidArgumentError } from '@digicap/capsule-core'
import {
  type CapsuleAnnouncement,
  type DigicapNode,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p/light'
import type { ExecutorChain } from './chain.ts'
import type { Executor, RunCapsuleOptions, RunCapsuleResult } from './executor.ts'

/** Why an announcement was not queued. */
export type AutoRunIgnoreReason =
  | 'other-chain'
  | 'other-registry'
  | 'duplicate'
  | 'rate-limited'
  | 'queue-full'
  | 'stopped'
  /** The registry does not list the capsule id with this CID and owner, or it is revoked. */
  | 'unregistered'

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
  /** Most announcements (capsule id, CID, owner) remembered as seen (LRU). Default 4096. */
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
  /**
   * The registry, read before each run: an announcement whose capsule id the registry does not
   * list with its CID and owner (or lists revoked) is ignored (`unregistered`) after one read.
   * Without it, anyone could have the node fetch any CID, from peers of their choosing, until
   * the fetch timeout, the run slot held all along (ADR 0090). Give the executor's chain.
   */
  readonly chain?: Pick<ExecutorChain, 'getCapsule'> | undefined
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

    const remember = (key: string): void => {
      seen.set(key, true)
      while (seen.size > maxSeen) {
        const oldest = seen.keys().next().value
        if (oldest === undefined) break
        seen.delete(oldest)
      }
    }

    /** Whether the registry lists `ann` as announced (capsule id, CID, owner), not revoked. */
    const listed = async (ann: CapsuleAnnouncement): Promise<boolean> => {
      const { chain } = components
      if (chain === undefined) return true
      const registered = await chain.getCapsule(hexToBytes(ann.capsuleId))
      return (
        registered !== undefined &&
        !registered.revoked &&
        registered.cid === ann.cid &&
        registered.owner.toLowerCase() === ann.owner.toLowerCase()
      )
    }

    const runOne = async (ann: CapsuleAnnouncement): Promise<void> => {
      try {
        // one registry read (in the run slot, so reads are as bounded as runs) before a fetch
        if (!(await listed(ann))) {
          emit({ type: 'ignored', cid: ann.cid, from: '', reason: 'unregistered' })
          return
        }
        const result = await components.executor.runCapsule(ann.cid, init.runOptions ?? {})
        emit({ type: 'ran', cid: ann.cid, result })
      } catch (error) {
        emit({ type: 'failed', cid: ann.cid, error })
      }
    }

    const pump = (): void => {
      while (!stopped && running.size < concurrency && queue.length > 0) {
        const ann = queue.shift()
        if (ann === undefined) break
        const p = runOne(ann).finally(() => {
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
      // seen by what the registry is asked about: a forged announcement of a real CID (another
      // capsule id or owner) does not make the true one a duplicate
      const key = `${ann.capsuleId.toLowerCase()} ${ann.cid} ${ann.owner.toLowerCase()}`
      if (seen.has(key)) {
        seen.delete(key)
        seen.set(key, true)
        return ignore('duplicate')
      }
      if (!allow(from)) return ignore('rate-limited')
      if (queue.length >= maxQueued) return ignore('queue-full')
      remember(key)
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
