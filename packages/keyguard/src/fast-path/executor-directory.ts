/**
 * The executor directory: which executor addresses are registered in the NodeRegistry, with
 * which libp2p peer, as the fast path needs it before it verifies a signature or stores a nonce.
 *
 * What it costs whom:
 * - A registered executor is held in memory (`maxExecutors`, least recently used dropped) and
 *   re-read from the chain after `ttlMs`; its lookups never wait for the stranger budget.
 * - Executors `learn`ed from the NodeRegistry's registration events (the executor feed) are
 *   held without a time limit: later events keep them current, so a registered executor needs
 *   no lookup at all, not even its first. A request from another peer re-reads the chain at
 *   most once per `ttlMs` (a peer change whose event the feed has not seen yet).
 * - An address the chain does not know is remembered as such for `negativeTtlMs` in a bounded
 *   table (`maxStrangers` keys, oldest dropped: forgetting a stranger only costs a new lookup).
 * - An address seen for the first time costs one RPC lookup, drawn from a global token bucket
 *   (`lookups`) with at most `maxLookupsInFlight` at once; with the bucket empty the answer is
 *   `busy` at once. So fresh keys and free peer ids buy at most the bucket's rate of RPC calls,
 *   and a registered executor already known is answered from memory whatever they send.
 */
import { createRateLimiter } from '@digicap/protocol'
import type { ChainClient } from '../chain/chain-client.ts'

export interface ExecutorDirectoryInit {
  /** How long a registered executor's peer is reused before it is read again, ms. Default 5000. */
  ttlMs?: number
  /** How long an unregistered address is remembered, ms. Default 60 000. */
  negativeTtlMs?: number
  /** Registered executors held. Default 10 000. */
  maxExecutors?: number
  /** Unregistered addresses remembered. Default 10 000. */
  maxStrangers?: number
  /** Lookups of addresses not in memory: a global token bucket. Default 20 burst, 10 a second. */
  lookups?: { capacity: number; refillPerSecond: number }
  /** Lookups of addresses not in memory running at once. Default 4. */
  maxLookupsInFlight?: number
}

export interface ExecutorDirectoryComponents {
  chain: Pick<ChainClient, 'nodePeerId'>
}

/**
 * - `registered`: the address is a registered node whose peer id is the connection's.
 * - `not-registered`: the chain has no record of the address.
 * - `peer-mismatch`: registered, with another peer id.
 * - `busy`: not in memory, and the lookup budget is spent; retry after `retryAfterMs`.
 */
export type ExecutorVerdict =
  | { status: 'registered' }
  | { status: 'not-registered' }
  | { status: 'peer-mismatch' }
  | { status: 'busy'; retryAfterMs: number }

export interface ExecutorDirectory {
  /** Checks that `executor` (checksummed) is registered with the peer id `peer` (multihash bytes). */
  check(executor: string, peer: Uint8Array): Promise<ExecutorVerdict>
  /** True if `peer` (multihash bytes) is the registered peer of an executor held in memory. */
  knowsPeer(peer: Uint8Array): boolean
  /** Holds `executor` (checksummed) with `peer` as the chain's registration event says. */
  learn(executor: string, peer: Uint8Array): void
  /** Executors and strangers held (both bounded). */
  size(): { executors: number; strangers: number }
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i])

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Keeps a Map in least-recently-used order, at most `max` keys. */
function touch<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > max) map.delete(map.keys().next().value as string)
}

/**
 * Builds an executor directory over `chain.nodePeerId`.
 *
 * @example
 * ```ts
 * const directory = executorDirectory({ ttlMs: 5000 })({ chain })
 * if ((await directory.check(executor, peer)).status !== 'registered') return refuse()
 * ```
 */
export function executorDirectory(init: ExecutorDirectoryInit = {}) {
  return (components: ExecutorDirectoryComponents): ExecutorDirectory => {
    const { chain } = components
    const ttlMs = init.ttlMs ?? 5000
    const negativeTtlMs = init.negativeTtlMs ?? 60_000
    const maxExecutors = init.maxExecutors ?? 10_000
    const maxStrangers = init.maxStrangers ?? 10_000
    const maxInFlight = init.maxLookupsInFlight ?? 4
    const budget = createRateLimiter({
      ...(init.lookups ?? { capacity: 20, refillPerSecond: 10 }),
    })()
    /**
     * Registered executors: address → peer id bytes, when it was read (performance.now), and
     * whether it came from a registration event (`fed`: no time limit).
     */
    const executors = new Map<string, { peer: Uint8Array; at: number; fed: boolean }>()
    /** Unregistered addresses → until when (performance.now) that answer stands. */
    const strangers = new Map<string, number>()
    /** Peer ids (hex) of the executors held, counted. */
    const knownPeers = new Map<string, number>()
    const countPeer = (peer: Uint8Array, by: 1 | -1): void => {
      const key = hexOf(peer)
      const n = (knownPeers.get(key) ?? 0) + by
      if (n > 0) knownPeers.set(key, n)
      else knownPeers.delete(key)
    }
    const forgetExecutor = (executor: string): void => {
      const old = executors.get(executor)
      if (old === undefined) return
      executors.delete(executor)
      countPeer(old.peer, -1)
    }
    const holdExecutor = (executor: string, peer: Uint8Array, fed: boolean): void => {
      forgetExecutor(executor)
      executors.set(executor, { peer, at: performance.now(), fed })
      countPeer(peer, 1)
      if (executors.size > maxExecutors) forgetExecutor(executors.keys().next().value as string)
    }
    /** Lookups running, by address (a second request for the same address shares the first). */
    const running = new Map<string, Promise<Uint8Array | undefined>>()

    function lookup(executor: string): Promise<Uint8Array | undefined> {
      const shared = running.get(executor)
      if (shared !== undefined) return shared
      const p = chain.nodePeerId(executor).finally(() => running.delete(executor))
      running.set(executor, p)
      return p
    }

    async function resolve(executor: string, peer: Uint8Array): Promise<ExecutorVerdict> {
      const bound = await lookup(executor)
      if (bound === undefined) {
        forgetExecutor(executor)
        touch(strangers, executor, performance.now() + negativeTtlMs, maxStrangers)
        return { status: 'not-registered' }
      }
      strangers.delete(executor)
      holdExecutor(executor, bound, executors.get(executor)?.fed === true)
      return sameBytes(bound, peer) ? { status: 'registered' } : { status: 'peer-mismatch' }
    }

    return {
      async check(executor, peer) {
        const now = performance.now()
        const known = executors.get(executor)
        if (known !== undefined) {
          if (known.fed && sameBytes(known.peer, peer)) {
            touch(executors, executor, known, maxExecutors)
            return { status: 'registered' }
          }
          if (now - known.at < ttlMs) {
            touch(executors, executor, known, maxExecutors)
            return sameBytes(known.peer, peer)
              ? { status: 'registered' }
              : { status: 'peer-mismatch' }
          }
          // A known executor is re-read outside the stranger budget.
          return resolve(executor, peer)
        }
        const until = strangers.get(executor)
        if (until !== undefined) {
          if (now < until) return { status: 'not-registered' }
          strangers.delete(executor)
        }
        if (!running.has(executor)) {
          if (running.size >= maxInFlight) return { status: 'busy', retryAfterMs: 100 }
          const take = budget.take('lookups')
          if (!take.allowed) return { status: 'busy', retryAfterMs: take.retryAfterMs }
        }
        return resolve(executor, peer)
      },
      knowsPeer: (peer) => knownPeers.has(hexOf(peer)),
      learn(executor, peer) {
        strangers.delete(executor)
        holdExecutor(executor, peer, true)
      },
      size: () => ({ executors: executors.size, strangers: strangers.size }),
    }
  }
}
