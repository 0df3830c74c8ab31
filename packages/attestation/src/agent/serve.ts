/**
 * The executor's side of `/digicap/attest/1.0.0`: each challenge gets a fresh quote from the
 * agent for exactly the challenge's nonce, grant and key; each activation request the secret
 * TPM2_ActivateCredential recovers. A TPM failure (and a failed activation) becomes an
 * `internal` error reply (the handler's error stays local, reported to `onError`).
 */
import {
  attestServeProtocol,
  createRateLimiter,
  createStreamGate,
  type HandleOptions,
  handle,
  type ProtocolRegistrar,
  type StreamGate,
} from '@digicap/protocol'
import { toWireEvidence } from '../protocol/evidence.ts'
import type { AttestationAgent } from './types.ts'

export interface ServeAttestationOptions extends HandleOptions {
  /** The node's encoded attestation record (SPEC.md §9), sent with every answer. */
  record?: Uint8Array
  /**
   * Challengers the node expects (base58 peer ids): its grants' keyguards, the committees
   * watching its runs. They get slots of their own ({@link DEFAULT_ATTEST_CHALLENGES}) and no
   * rate limit, so strangers cannot crowd them out. Ignored when `gate` is given.
   */
  trustedChallengers?: (peer: string) => boolean
  /**
   * What each other peer may ask over time. Default {@link DEFAULT_ATTEST_STRANGER_RATE}.
   * Ignored when `gate` is given.
   */
  strangerRate?: { capacity: number; refillPerSecond: number }
}

/**
 * Trusted challengers' challenges in progress at once when no `gate` is given: per peer, and all
 * of them together (strangers have a lane of their own, `STRANGER_LANE`).
 * The agent quotes one at a time (the TPM is one device), so more would only queue TPM work
 * and buffers for whoever opens the most streams; beyond these a new stream is reset before
 * any byte is read (or takes the place of the oldest one still sending its challenge).
 */
export const DEFAULT_ATTEST_CHALLENGES = { maxPerPeer: 2, maxTotal: 8 } as const

/**
 * Challenges one untrusted peer may start over time: a burst of 4, then 2 a second — a watching
 * verifier asks about twice a second; a stranger looping challenges gets no more than that, so a
 * few peer ids cannot keep the TPM busy (ADR 0067).
 */
export const DEFAULT_ATTEST_STRANGER_RATE = { capacity: 4, refillPerSecond: 2 } as const

/**
 * The strangers' lane: 2 challenges in progress per peer (a watcher's next challenge may come
 * before the handler let go of its last one), 16 in all, so a few peer ids looping challenges
 * leave slots free for an honest untrusted watcher (a committee the node does not know), while
 * the TPM queue it waits behind stays bounded.
 */
const STRANGER_LANE = { maxPerPeer: 2, maxTotal: 16 } as const

/**
 * Two lanes: trusted challengers get a gate of their own (strangers never take its slots);
 * the others share {@link STRANGER_LANE} after their per-peer rate. A stream refused by either
 * is reset before any byte is read.
 */
function attestGate(
  trusted: (peer: string) => boolean,
  rate: { capacity: number; refillPerSecond: number },
): StreamGate {
  const own = createStreamGate({ ...DEFAULT_ATTEST_CHALLENGES })
  const shared = createStreamGate({ ...STRANGER_LANE })
  const limiter = createRateLimiter(rate)()
  let limited = 0
  return {
    admit(peer, evict) {
      if (trusted(peer)) return own.admit(peer, evict)
      if (!limiter.take(peer).allowed) {
        limited++
        return undefined
      }
      return shared.admit(peer, evict)
    },
    stats() {
      const [a, b] = [own.stats(), shared.stats()]
      return {
        active: a.active + b.active,
        peakActive: Math.max(a.peakActive, b.peakActive),
        peers: a.peers + b.peers,
        refused: a.refused + b.refused + limited,
        evicted: a.evicted + b.evicted,
      }
    },
  }
}

/**
 * Registers the attest protocol on `node`; returns the function that unregisters it. What
 * strangers can make the TPM do is bounded by a stream gate (2 challenges in progress per
 * peer, 16 in all, {@link DEFAULT_ATTEST_STRANGER_RATE} over time per peer; trusted challengers
 * in a lane of their own, {@link DEFAULT_ATTEST_CHALLENGES}) unless `options.gate` is given.
 * Pass a connection guard (`guard`) to cut strangers' connections too.
 */
export function serveAttestation(
  node: ProtocolRegistrar,
  agent: Pick<AttestationAgent, 'quote'> & Partial<Pick<AttestationAgent, 'activateCredential'>>,
  options: ServeAttestationOptions = {},
): Promise<() => Promise<void>> {
  const { record, trustedChallengers, strangerRate, ...rest } = options
  const trusted = trustedChallengers ?? (() => false)
  const handleOptions: HandleOptions = {
    ...rest,
    gate: rest.gate ?? attestGate(trusted, strangerRate ?? DEFAULT_ATTEST_STRANGER_RATE),
    ...(trustedChallengers === undefined || rest.isTrustedPeer !== undefined
      ? {}
      : { isTrustedPeer: (peer) => trustedChallengers(peer.toString()) }),
  }
  return handle(
    node,
    attestServeProtocol,
    async (req, context) => {
      if (req.t === 'attest-activate') {
        if (agent.activateCredential === undefined) {
          throw new Error('This agent does not activate credentials')
        }
        const secret = await agent.activateCredential({
          idObject: req.idObject,
          encryptedSecret: req.encryptedSecret,
        })
        return { t: 'attest-activated' as const, secret }
      }
      return {
        t: 'attest-evidence' as const,
        ...toWireEvidence({
          ...(await agent.quote(
            { nonce: req.nonce, grantId: req.grantId, ephemeralPublicKey: req.ephemeralKey },
            { peer: context.peer.toString() },
          )),
          ...(record === undefined ? {} : { record }),
        }),
      }
    },
    handleOptions,
  )
}
