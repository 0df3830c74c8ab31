/**
 * libp2p's connection monitor as every Digicap node runs it (`createDigicapNode`), and as the
 * packages' tests configure their bare libp2p nodes (`connectionMonitor: CONNECTION_MONITOR`).
 */

/**
 * A connection whose ping (libp2p's connection monitor) gets no answer within this is aborted.
 * libp2p's default adapts to the measured round trip with a 5 s floor, and under load (a busy
 * box, a ping frame queued behind megabytes of bitswap blocks) a live peer answers later than
 * that: the monitor cut fetches mid-way and nothing dialled again (ADR 0041).
 */
export const CONNECTION_PING_TIMEOUT_MS = 50_000
/**
 * How often the monitor pings a connection: longer than the timeout, so that a slow ping is
 * never still open at the next one (a second ping stream on a connection is refused, ping allows
 * one, and the monitor aborted the connection for it; libp2p's default is 10 s).
 */
export const CONNECTION_PING_INTERVAL_MS = 60_000

/**
 * libp2p's `connectionMonitor` option of a Digicap node: a dead peer is still found (within two
 * minutes); a busy one keeps its connection.
 */
export const CONNECTION_MONITOR = {
  pingInterval: CONNECTION_PING_INTERVAL_MS,
  pingTimeout: { minTimeout: CONNECTION_PING_TIMEOUT_MS, maxTimeout: CONNECTION_PING_TIMEOUT_MS },
} as const
