import { DigicapError } from '@digicap/capsule-core'
import { announceCapsule, type DigicapNode } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import type { AnnounceOutcome, Announcer } from './types.ts'

export interface GossipAnnouncerInit {
  /** Multiaddrs (with `/p2p/<id>`) dialled before announcing, e.g. a running keyguard. */
  peers?: readonly string[]
  /** How long to wait for a dial and for a subscriber. Default 5000 ms. */
  timeoutMs?: number
}

/**
 * An {@link Announcer} on the capsule gossipsub topic of a p2p node: dials `peers` first,
 * then publishes once a peer subscribes. A failure is an outcome with the error's code.
 *
 * @example
 * ```ts
 * const announcer = gossipAnnouncer(node, { peers: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3…'] })
 * ```
 */
export function gossipAnnouncer(
  node: Pick<DigicapNode, 'libp2p'>,
  init: GossipAnnouncerInit = {},
): Announcer {
  const timeoutMs = init.timeoutMs ?? 5000
  return {
    async announce(ann): Promise<AnnounceOutcome> {
      try {
        for (const peer of init.peers ?? []) {
          await node.libp2p.dial(multiaddr(peer), { signal: AbortSignal.timeout(timeoutMs) })
        }
        const { recipients } = await announceCapsule(node, ann, { timeoutMs })
        return { ok: true, recipients }
      } catch (err) {
        return { ok: false, reason: err instanceof DigicapError ? String(err.code) : 'UNKNOWN' }
      }
    },
  }
}
