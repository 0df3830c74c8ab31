/**
 * The executor feed: fills the executor directory from the NodeRegistry's `NodeRegistered` and
 * `NodeUpdated` logs (through the chain client, so with a quorum of RPCs), from `startBlock` to
 * the head and then every `pollIntervalMs`. A registered executor is then known before its first
 * request, so it never needs a lookup from the strangers' budget (ADR 0018).
 *
 * No confirmations: the directory is only a cache in front of the chain reads that decide
 * (`checkAccess` at a pinned block), so an event reorged away costs at worst a `policy-denied`.
 * The cursor lives in memory: a restart re-reads from `startBlock`, in `batchBlocks` ranges
 * (`start()` waits for that up to `startWaitMs`; beyond it the directory answers from lookups as
 * before while the read goes on).
 */
import type { ChainClient } from '../chain/chain-client.ts'
import type { Logger } from '../types.ts'
import type { ExecutorDirectory } from './executor-directory.ts'

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
}

export interface ExecutorFeedComponents {
  chain: Pick<ChainClient, 'blockNumber' | 'nodeRegistrations'>
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
    let next = init.startBlock ?? 0
    let synced = false
    let learned = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    let running: Promise<number> | undefined
    let stopped = true

    async function read(): Promise<number> {
      const head = await chain.blockNumber()
      let applied = 0
      while (next <= head) {
        const to = Math.min(head, next + batch - 1)
        for (const log of await chain.nodeRegistrations(next, to)) {
          directory.learn(log.node, log.peerId)
          applied++
        }
        next = to + 1
      }
      learned += applied
      if (!synced) {
        synced = true
        components.onSynced?.({ block: head, executors: learned })
      }
      return applied
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
      },
      poll,
    }
  }
}
