/**
 * The executor feed: fills the executor directory from the NodeRegistry's `NodeRegistered` and
 * `NodeUpdated` logs (through the chain client, so with a quorum of RPCs), from `startBlock` to
 * the head and then every `pollIntervalMs`. A registered executor is then known before its first
 * request, so it never needs a lookup from the strangers' budget (ADR 0018).
 *
 * No confirmations: the directory is only a cache in front of the chain reads that decide
 * (`checkAccess` at a pinned block), so an event reorged away costs at worst a `policy-denied`.
 *
 * With a `file`, the cursor and the registrations applied are saved together (atomically) after
 * every read that applied one, and at least every `saveIntervalMs` otherwise; a restart loads
 * them into the directory and resumes `rewindBlocks` before the saved cursor (re-applying a
 * range in chain order leaves the same directory, and a block reorged in just below the cursor
 * is read again), not from `startBlock`. A kill between two saves re-reads at most what came
 * after the last one. Without a file (or with an unreadable one) a restart re-reads from
 * `startBlock` (`start()` waits for that up to `startWaitMs`; beyond it the directory answers
 * from lookups while the read goes on).
 */
import type { ChainClient } from '../chain/chain-client.ts'
import type { Logger } from '../types.ts'
import type { ExecutorDirectory } from './executor-directory.ts'
import { type FeedState, loadFeedState, saveFeedState } from './executor-feed-state.ts'

export interface ExecutorFeedInit {
  /** First block to read (the NodeRegistry's deployment block). Default 0. */
  startBlock?: number
  /** Largest `eth_getLogs` range. Default 2000. */
  batchBlocks?: number
  /** Poll period once caught up, ms. Default 2000. */
  pollIntervalMs?: number
  /**
   * How long `start()` waits for the first read to reach the head, ms, so that the fast path
   * opens with the registered executors known; a longer history goes on in the background.
   * Default 5000.
   */
  startWaitMs?: number
  /** Where the cursor and the registrations are saved (see `executor-feed-state.ts`). Default: memory only. */
  file?: string
  /** Longest time between two saves of a cursor that moved with no registration, ms. Default 30 000. */
  saveIntervalMs?: number
  /** Blocks re-read before the saved cursor at start. Default 64. */
  rewindBlocks?: number
}

export interface ExecutorFeedComponents {
  chain: Pick<ChainClient, 'blockNumber' | 'nodeRegistrations' | 'chainId' | 'accessController'>
  directory: Pick<ExecutorDirectory, 'learn'>
  /** Told once, when the feed first reaches the head. */
  onSynced?: (at: { block: number; executors: number }) => void
  logger?: Logger
}

export interface ExecutorFeed {
  /**
   * Starts reading (errors are logged and retried at the next poll). Resolves when the first
   * read reached the head, failed, or `startWaitMs` passed; reading goes on in the background.
   */
  start(): Promise<void>
  /** Stops polling and waits for the read in progress. */
  stop(): Promise<void>
  /** Reads up to the head now. Returns how many registration logs were applied. */
  poll(): Promise<number>
}

/**
 * Builds an executor feed.
 *
 * @example
 * ```ts
 * const feed = executorFeed({ startBlock: deployBlock })({ chain, directory })
 * await feed.start()
 * ```
 */
export function executorFeed(init: ExecutorFeedInit = {}) {
  return (components: ExecutorFeedComponents): ExecutorFeed => {
    const { chain, directory } = components
    const batch = init.batchBlocks ?? 2000
    const interval = init.pollIntervalMs ?? 2000
    const startBlock = init.startBlock ?? 0
    const saveIntervalMs = init.saveIntervalMs ?? 30_000
    let next = startBlock
    let synced = false
    /** Registrations applied (what a save writes), by address. */
    const applied = new Map<string, Uint8Array>()
    let saved = { next, at: performance.now() }
    let loaded = false

    async function load(): Promise<void> {
      if (init.file === undefined) return
      let state: FeedState | undefined
      try {
        state = await loadFeedState(init.file, chain)
      } catch (err) {
        // A cache: an unreadable file costs a read from `startBlock`, nothing else.
        components.logger?.warn('executor feed: saved state unreadable, reading from the start', {
          error: (err as { code?: string }).code ?? String(err),
        })
        return
      }
      if (state === undefined) return
      for (const [node, peer] of state.executors) {
        applied.set(node, peer)
        directory.learn(node, peer)
      }
      next = Math.max(startBlock, state.next - (init.rewindBlocks ?? 64))
      saved = { next: state.next, at: performance.now() }
    }

    async function save(force: boolean): Promise<void> {
      if (init.file === undefined || next === saved.next) return
      if (!force && performance.now() - saved.at < saveIntervalMs) return
      try {
        await saveFeedState(init.file, chain, { next, executors: applied })
        saved = { next, at: performance.now() }
      } catch (err) {
        components.logger?.warn('executor feed: saving the cursor failed', {
          error: (err as { code?: string }).code ?? String(err),
        })
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    let running: Promise<number> | undefined
    let stopped = true

    async function read(): Promise<number> {
      if (!loaded) {
        await load()
        loaded = true
      }
      const head = await chain.blockNumber()
      let count = 0
      while (next <= head) {
        const to = Math.min(head, next + batch - 1)
        const logs = await chain.nodeRegistrations(next, to)
        for (const log of logs) {
          applied.set(log.node, log.peerId)
          directory.learn(log.node, log.peerId)
        }
        count += logs.length
        next = to + 1
        // Saved with the registrations it covers, range by range: a kill re-reads at most one.
        await save(logs.length > 0)
      }
      await save(false)
      if (!synced) {
        synced = true
        components.onSynced?.({ block: head, executors: applied.size })
      }
      return count
    }

    // One read at a time: the timer and `poll()` share it.
    const poll = (): Promise<number> => {
      running ??= read().finally(() => {
        running = undefined
      })
      return running
    }

    const tick = (): Promise<void> =>
      poll()
        .then(() => undefined)
        .catch((err: unknown) => {
          components.logger?.warn('executor feed: reading registrations failed', {
            error: (err as { code?: string }).code ?? String(err),
            next,
          })
        })
        .finally(() => {
          if (!stopped) timer = setTimeout(tick, interval)
        })

    return {
      async start() {
        if (!stopped) return
        stopped = false
        let waited: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          tick(),
          new Promise<void>((r) => {
            waited = setTimeout(r, init.startWaitMs ?? 5000)
          }),
        ])
        clearTimeout(waited)
      },
      async stop() {
        stopped = true
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        await running?.catch(() => undefined)
        // A clean stop keeps the cursor too (a kill re-reads since the last save).
        if (loaded) await save(true)
      },
      poll,
    }
  }
}
