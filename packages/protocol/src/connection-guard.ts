/**
 * Cuts strangers at the connection, not the stream. Each inbound stream of a guarded protocol
 * costs its responder libp2p's per-stream machinery (a yamux stream, multistream-select, a
 * peer-store write, framing) before any handler check runs, however cheap the check; so a
 * stranger that keeps opening streams on an open connection buys CPU no answer can refuse.
 *
 * The guard gives each peer that is not trusted (a responder's trusted peers: a keyguard's
 * registered executors) a budget of guarded streams (`perPeer`), and all such peers of one host
 * (IP; /64 for IPv6, since peer ids are free and one machine can hold many) a budget together
 * (`perHost`). A stream over either budget closes its connection at once, and the peer — or, for
 * the host budget, every untrusted peer of that host — is refused for `cooldownMs`: by the
 * libp2p connection gater right after the encryption handshake (before the muxer, identify or
 * any stream), and by `admitStream` for connections opened before. A trusted peer is never
 * counted, cut or refused, whatever its host did: it is known by its authenticated peer id, so
 * an executor that shares a host (or a NAT) with an attacker keeps its connection and can
 * reconnect.
 *
 * Memory is bounded: budgets and cooldowns are kept for at most `maxTracked` peers and hosts
 * each, the least recently used dropped first.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import type { Connection, ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import { WireAbortedError } from './errors.ts'
import { createRateLimiter } from './rate-limit.ts'

/** A token bucket: `capacity` burst, `refillPerSecond` sustained. */
export interface StreamBudget {
  capacity: number
  refillPerSecond: number
}

/** Options of {@link createConnectionGuard}. */
export interface ConnectionGuardInit {
  /** Guarded streams one untrusted peer may open. Default 20 burst, 10 a second. */
  perPeer?: StreamBudget
  /** Guarded streams all untrusted peers of one host may open together. Default 40 burst, 20 a second. */
  perHost?: StreamBudget
  /** How long a cut peer, or a host over its budget, is refused, ms. Default 60 000. */
  cooldownMs?: number
  /** Peers and hosts whose budget or cooldown is held, each. Default 10 000. */
  maxTracked?: number
  /** Peers (base58 peer ids) that are never counted, cut or refused. */
  trustedPeers?: Iterable<string>
}

/** Why a connection was cut or refused. */
export type CutReason = 'peer-budget' | 'host-budget' | 'peer-cooling' | 'host-cooling'

/** Components of a connection guard. */
export interface ConnectionGuardComponents {
  /** Milliseconds clock. Default `performance.now`. */
  now?: () => number
  /** Told about each connection cut (`admitStream`) or refused (the gater). Must not throw. */
  onCut?: (event: { peer: string; host: string; reason: CutReason; refused: boolean }) => void
}

/** Counters, for tests, benches and metrics. */
export interface ConnectionGuardStats {
  /** Untrusted peers' guarded streams let through (within both budgets). */
  readonly admitted: number
  /** Connections closed by `admitStream`. */
  readonly cut: number
  /** Connections refused by the gater (after the handshake, before the muxer). */
  readonly refused: number
  /** Peers and hosts in their cooldown now (including expired entries not yet swept). */
  readonly coolingPeers: number
  readonly coolingHosts: number
}

/** The verdict on one inbound stream of a guarded protocol. */
export type StreamVerdict = 'admit' | 'cut'

export interface ConnectionGuard {
  /**
   * Pass as libp2p's `connectionGater` (or merge it into yours): refuses a cut peer, and an
   * untrusted peer of a host in its cooldown, right after the encryption handshake.
   */
  readonly gater: Required<Pick<ConnectionGater, 'denyInboundEncryptedConnection'>>
  /**
   * Adds who is never counted, cut or refused (e.g. the registered executors' peers, known
   * only once a responder runs); returns a function that removes it.
   */
  trust(isTrusted: (peer: PeerId) => boolean): () => void
  /**
   * Called for each inbound stream of a guarded protocol before anything is read from it:
   * `admit`, or `cut` (its connection is aborted and the peer or host refused for the cooldown).
   */
  admitStream(connection: Pick<Connection, 'remotePeer' | 'remoteAddr' | 'abort'>): StreamVerdict
  stats(): ConnectionGuardStats
}

const IP4 = 4
const IP6 = 41

/** Expands an IPv6 text address to its 8 groups (`::` filled in), lower case. */
function ip6Groups(ip: string): string[] {
  const [head = '', tail] = ip.toLowerCase().split('::')
  const part = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':'))
  const h = part(head)
  const t = part(tail)
  const zeros = tail === undefined ? [] : Array(Math.max(0, 8 - h.length - t.length)).fill('0')
  return [...h, ...zeros, ...t].map((g) => g.replace(/^0+(?=.)/, ''))
}

/**
 * The host a remote address counts against: the IPv4 address, or the /64 of an IPv6 address
 * (one machine's usual share); an address without an IP counts as itself.
 */
export function hostOf(addr: { getComponents(): { code: number; value?: string }[] }): string {
  for (const c of addr.getComponents()) {
    if (c.code === IP4 && c.value !== undefined) return c.value
    if (c.code === IP6 && c.value !== undefined) {
      const groups = ip6Groups(c.value)
      // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 host.
      const last = groups[groups.length - 1] ?? ''
      if (last.includes('.')) return last
      return `${groups.slice(0, 4).join(':')}::/64`
    }
  }
  return String(addr)
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${name} must be a positive number`, {
      details: { [name]: value },
    })
  }
  return value
}

/**
 * Creates a connection guard.
 *
 * @throws {InvalidArgumentError} for a non-positive budget, cooldown or `maxTracked`.
 * @example
 * ```ts
 * const guard = createConnectionGuard()()
 * const node = await createLibp2p({ connectionGater: guard.gater, ... })
 * guard.trust((peer) => executors.knowsPeer(peer))
 * await handle(node, fastPathProtocol, onRequest, { guard })
 * ```
 */
export function createConnectionGuard(
  init: ConnectionGuardInit = {},
): (components?: ConnectionGuardComponents) => ConnectionGuard {
  const cooldownMs = positive('cooldownMs', init.cooldownMs ?? 60_000)
  const maxTracked = Math.floor(positive('maxTracked', init.maxTracked ?? 10_000))
  const perPeer = init.perPeer ?? { capacity: 20, refillPerSecond: 10 }
  const perHost = init.perHost ?? { capacity: 40, refillPerSecond: 20 }
  const trustedPeers = new Set(init.trustedPeers ?? [])
  return (components = {}) => {
    const now = components.now ?? (() => performance.now())
    const peerBudget = createRateLimiter({ ...perPeer, maxKeys: maxTracked })({ now })
    const hostBudget = createRateLimiter({ ...perHost, maxKeys: maxTracked })({ now })
    /** Cooldown ends (ms on `now`), oldest first. */
    const coolingPeers = new Map<string, number>()
    const coolingHosts = new Map<string, number>()
    const predicates = new Set<(peer: PeerId) => boolean>()
    let admitted = 0
    let cut = 0
    let refused = 0

    const trusted = (peer: PeerId): boolean => {
      if (trustedPeers.has(peer.toString())) return true
      for (const p of predicates) if (p(peer)) return true
      return false
    }
    const cool = (map: Map<string, number>, key: string): void => {
      map.delete(key)
      map.set(key, now() + cooldownMs)
      if (map.size > maxTracked) map.delete(map.keys().next().value as string)
    }
    const cooling = (map: Map<string, number>, key: string): boolean => {
      const until = map.get(key)
      if (until === undefined) return false
      if (until > now()) return true
      map.delete(key)
      return false
    }
    /** Why `peer` of `host` is refused now, if it is. */
    const coolingReason = (peer: string, host: string): CutReason | undefined => {
      if (cooling(coolingPeers, peer)) return 'peer-cooling'
      if (cooling(coolingHosts, host)) return 'host-cooling'
      return undefined
    }
    const tell = (peer: string, host: string, reason: CutReason, wasRefused: boolean): void => {
      try {
        components.onCut?.({ peer, host, reason, refused: wasRefused })
      } catch {
        // An observer must not break the guard.
      }
    }

    return {
      gater: {
        denyInboundEncryptedConnection(peerId: PeerId, maConn: MultiaddrConnection): boolean {
          if (trusted(peerId)) return false
          const peer = peerId.toString()
          const host = hostOf(maConn.remoteAddr)
          const reason = coolingReason(peer, host)
          if (reason === undefined) return false
          refused++
          tell(peer, host, reason, true)
          return true
        },
      },
      trust(isTrusted) {
        predicates.add(isTrusted)
        return () => {
          predicates.delete(isTrusted)
        }
      },
      admitStream(connection) {
        const peerId = connection.remotePeer
        if (trusted(peerId)) return 'admit'
        const peer = peerId.toString()
        const host = hostOf(connection.remoteAddr)
        let reason = coolingReason(peer, host)
        if (reason === undefined) {
          // Both budgets are charged, so a host's many peer ids add up whichever runs out.
          const ownOk = peerBudget.take(peer).allowed
          const hostOk = hostBudget.take(host).allowed
          if (!hostOk) {
            reason = 'host-budget'
            cool(coolingHosts, host)
          } else if (!ownOk) {
            reason = 'peer-budget'
          } else {
            admitted++
            return 'admit'
          }
        }
        cool(coolingPeers, peer)
        cut++
        tell(peer, host, reason, false)
        connection.abort(
          new WireAbortedError('Connection cut: over the budget for untrusted peers', {
            details: { reason, peer, host },
          }),
        )
        return 'cut'
      },
      stats: () => ({
        admitted,
        cut,
        refused,
        coolingPeers: coolingPeers.size,
        coolingHosts: coolingHosts.size,
      }),
    }
  }
}
