/**
 * The fast path's stream gate: bounds request frames being read at once, in two lanes.
 *
 * - A registered executor's peer (authenticated by the connection) may have up to
 *   `maxReadingPerExecutor` frames being read, counted apart from everyone else.
 * - Every other peer (a stranger) may have `maxReadingPerPeer`, and all strangers together
 *   `maxReading`.
 *
 * Why a lane of its own: when a flood stalls the event loop, an executor's streams arrive
 * together and sit "being read" until the loop turns; a per-peer cap sized for strangers then
 * aborted the executor's own requests. Held half-frames still pin a bounded amount of memory
 * for at most the read deadline: strangers by the two caps, executors (staked) by theirs.
 */
import type { StreamGate, StreamTicket } from '@digicap/protocol'

export interface LaneGateInit {
  /** Frames being read at once from one stranger peer. */
  maxReadingPerPeer: number
  /** Frames being read at once from all strangers. */
  maxReading: number
  /** Frames being read at once from one registered executor's peer. */
  maxReadingPerExecutor: number
}

export interface LaneGateComponents {
  /** True if `peer` (its string form) is a registered executor's peer. */
  isExecutorPeer: (peer: string) => boolean
}

/**
 * Builds the two-lane gate for `handle(..., { gate })`.
 *
 * @example
 * ```ts
 * const gate = laneGate({ maxReadingPerPeer: 4, maxReading: 256, maxReadingPerExecutor: 32 })({
 *   isExecutorPeer: (p) => directory.knowsPeer(peerIdFromString(p).toMultihash().bytes),
 * })
 * ```
 */
export function laneGate(init: LaneGateInit) {
  return (components: LaneGateComponents): StreamGate => {
    /** Frames being read, per peer (both lanes; a peer is in one lane per stream). */
    const readingByPeer = new Map<string, number>()
    let strangersReading = 0
    let active = 0
    let peakActive = 0
    let refused = 0

    const add = (peer: string, by: 1 | -1): void => {
      const n = (readingByPeer.get(peer) ?? 0) + by
      if (n > 0) readingByPeer.set(peer, n)
      else readingByPeer.delete(peer)
    }

    return {
      admit(peer): StreamTicket | undefined {
        const executor = components.isExecutorPeer(peer)
        const mine = readingByPeer.get(peer) ?? 0
        const full = executor
          ? mine >= init.maxReadingPerExecutor
          : mine >= init.maxReadingPerPeer || strangersReading >= init.maxReading
        if (full) {
          refused++
          return undefined
        }
        add(peer, 1)
        if (!executor) strangersReading++
        active++
        peakActive = Math.max(peakActive, active)
        let reading = true
        let done = false
        const doneReading = (): void => {
          if (!reading) return
          reading = false
          add(peer, -1)
          if (!executor) strangersReading--
        }
        return {
          read: doneReading,
          release() {
            if (done) return
            done = true
            doneReading()
            active--
          },
        }
      },
      stats: () => ({ active, peakActive, peers: readingByPeer.size, refused, evicted: 0 }),
    }
  }
}
