/**
 * Admission of inbound streams, so that a responder's memory stays bounded whatever peers do:
 * at most `maxPerPeer` exchanges of one peer and `maxTotal` of everyone are in progress at
 * once, each holding at most one frame (`maxSize`). When the gate is full, a new stream takes
 * the place of the oldest one that is still *reading* its request (a peer that sends half a
 * frame and holds it is the first to go); streams whose request is in are never evicted, and
 * when all are, the newcomer is turned away. An honest request, read in milliseconds, thus
 * gets through a flood of held half-frames from any number of peer ids.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'

/** Options of {@link createStreamGate}. */
export interface StreamGateInit {
  /** Exchanges of one peer in progress at once. */
  maxPerPeer: number
  /** Exchanges in progress at once, all peers together. */
  maxTotal: number
}

/** One admitted exchange. */
export interface StreamTicket {
  /** The request is read: from now on the exchange is not evicted. */
  read(): void
  /** The exchange is over (idempotent). */
  release(): void
}

/** Counters, for tests and metrics. */
export interface StreamGateStats {
  /** Exchanges in progress now. */
  readonly active: number
  /** Most exchanges in progress at once since the gate was made. */
  readonly peakActive: number
  /** Peers with an exchange in progress now. */
  readonly peers: number
  /** Streams turned away (per-peer limit, or full of read requests). */
  readonly refused: number
  /** Streams aborted to make room. */
  readonly evicted: number
}

/** The gate a handler asks before it reads a stream. */
export interface StreamGate {
  /**
   * Admits an exchange of `peer`, or returns undefined (the caller resets the stream).
   * `evict` is called if the exchange is later pushed out while still reading.
   */
  admit(peer: string, evict: () => void): StreamTicket | undefined
  stats(): StreamGateStats
}

interface Entry {
  readonly peer: string
  readonly evict: () => void
  reading: boolean
  done: boolean
}

function count(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer`, {
      details: { [name]: value },
    })
  }
  return value
}

/**
 * @throws {InvalidArgumentError} for a limit that is not a positive integer.
 * @example
 * ```ts
 * const gate = createStreamGate({ maxPerPeer: 2, maxTotal: 16 })
 * await handle(libp2p, resultProtocol, onResult, { gate })
 * ```
 */
export function createStreamGate(init: StreamGateInit): StreamGate {
  const maxPerPeer = count('maxPerPeer', init.maxPerPeer)
  const maxTotal = count('maxTotal', init.maxTotal)
  // Insertion order = age: the first reading entry is the oldest one.
  const entries = new Set<Entry>()
  const perPeer = new Map<string, number>()
  let peakActive = 0
  let refused = 0
  let evicted = 0

  const drop = (e: Entry): void => {
    if (e.done) return
    e.done = true
    entries.delete(e)
    const n = (perPeer.get(e.peer) ?? 1) - 1
    if (n <= 0) perPeer.delete(e.peer)
    else perPeer.set(e.peer, n)
  }

  return {
    admit(peer, evict) {
      if ((perPeer.get(peer) ?? 0) >= maxPerPeer) {
        refused++
        return undefined
      }
      if (entries.size >= maxTotal) {
        let oldest: Entry | undefined
        for (const e of entries) {
          if (e.reading) {
            oldest = e
            break
          }
        }
        if (oldest === undefined) {
          refused++
          return undefined
        }
        drop(oldest)
        evicted++
        try {
          oldest.evict()
        } catch {
          // the stream is already gone
        }
      }
      const entry: Entry = { peer, evict, reading: true, done: false }
      entries.add(entry)
      perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1)
      peakActive = Math.max(peakActive, entries.size)
      return {
        read: () => {
          entry.reading = false
        },
        release: () => drop(entry),
      }
    },
    stats: () => ({ active: entries.size, peakActive, peers: perPeer.size, refused, evicted }),
  }
}
