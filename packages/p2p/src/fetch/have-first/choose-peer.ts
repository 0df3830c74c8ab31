/**
 * Which of the peers that said "have" gets the want-block: the one with the fewest blocks
 * already asked of it by this node (a pull spreads over every peer that has the blocks), peers
 * that failed us lately after the others, and a source (a peer that wants nothing from us,
 * like the owner) after a peer that is fetching the same content itself: the origin serves a
 * block only when no peer can.
 */

/** What one peer costs as the next want-block's target. */
export interface PeerLoad {
  /** Want-blocks sent to it and not answered yet. */
  outstanding: number
  /** Recent failures: timeouts, a "don't have" after "have", a block that did not verify. */
  failures: number
  /** It asks nothing of us (an origin, or a peer that is done). */
  source: boolean
}

/** A source is chosen over a fetching peer only when that peer has this many more blocks asked. */
export const SOURCE_WEIGHT = 8
/** One recent failure weighs as much as this many outstanding blocks. */
export const FAILURE_WEIGHT = 64

export function peerCost(load: PeerLoad): number {
  return load.outstanding + load.failures * FAILURE_WEIGHT + (load.source ? SOURCE_WEIGHT : 0)
}

/** The cheapest of `peers` (the first on ties, so callers may order them); `undefined` if none. */
export function choosePeer(
  peers: Iterable<string>,
  loadOf: (peer: string) => PeerLoad,
): string | undefined {
  let best: string | undefined
  let bestCost = Number.POSITIVE_INFINITY
  for (const peer of peers) {
    const cost = peerCost(loadOf(peer))
    if (cost < bestCost) {
      best = peer
      bestCost = cost
    }
  }
  return best
}
