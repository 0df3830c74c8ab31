/**
 * Have-first block fetch (ADR 0044). `@helia/bitswap` 4 sends every want-block to every
 * connected peer, and every peer holding the block sends all of it: eight executors pulling one
 * image from each other received each block up to eight times. Here a block is asked as
 * want-have of every connected peer, then as want-block of ONE peer that said "have" (the
 * cheapest by `choose-peer.ts`); a "don't have", a timeout, a block that does not verify or a
 * disconnect moves the want-block to the next peer that has it. ADR 0041's safety net stays: a
 * want with no block `timeoutMs` after it was last sent is sent again (to the next haver, the
 * same one, or as want-have to every peer when nobody has answered).
 *
 * Runs on the node's own bitswap (its broker's `retrieve` is replaced): the serving side is
 * bitswap's, unchanged (it answers want-have, and tells a peer "have" later when a block it was
 * asked for arrives, which is how a peer that fetched a block becomes a source for the others).
 */
import type { PeerId } from '@libp2p/interface'
import { base64 } from 'multiformats/bases/base64'
import type { CID } from 'multiformats/cid'
import { WANT_RESENT_EVENT } from '../want-resend.ts'
import type {
  BitswapBroker,
  BlockEventDetail,
  PresenceEventDetail,
  RetrieveOptions,
} from './bitswap-parts.ts'
import { choosePeer, type PeerLoad } from './choose-peer.ts'
import { createOutbox, type Outbox } from './outbox.ts'

/**
 * After a first "have", how long the other peers asked get to answer before the want-block goes
 * out (all answered: at once). Without it the fastest answer, usually the origin's, won every
 * block and nothing was spread.
 */
export const GATHER_MS = 30

/** A peer's failures are forgotten this long after its last one. */
export const FAILURE_MEMORY_MS = 60_000

/**
 * A peer that said "have" before and lost its connection while wants are open is dialled again, up to
 * this many times (after 1, 2, 4 s): nothing else dials it (an executor knows the owner by the
 * one dial at start), and the fetch waited for its timeout.
 */
export const REDIAL_ATTEMPTS = 3
export const REDIAL_FIRST_DELAY_MS = 1_000

/**
 * A block just handed to its waiters is kept this long (at most `RECENT_BLOCKS` of them) and given
 * to a second `retrieve` of the same CID at once. helia's storage checks `has()` before it asks
 * bitswap and puts the block after: a reader that asks again while that put runs (two fetch
 * windows share a boundary leaf) made a fresh want whose want-block went out in the same batch as
 * the first want's cancel. The cancel was replaced, the serving peer still counted the block as
 * sent and ignored the new want-block, and the fetch waited for the want re-send (10 s).
 */
export const RECENT_MS = 1_000
export const RECENT_BLOCKS = 8

export interface HaveFirstComponents {
  broker: BitswapBroker
  /** The peers connected now (bitswap reports the later ones). */
  connectedPeers: () => PeerId[]
  /** Dials a peer again (by the addresses the node knows for it). */
  dial: (peer: PeerId, options: { signal: AbortSignal }) => Promise<unknown>
}

export interface HaveFirstInit {
  /** A want with no block this long after it was last sent is sent again. */
  timeoutMs: number
  /** A peer's failures are forgotten this long after its last one. Default {@link FAILURE_MEMORY_MS}. */
  failureMemoryMs?: number
}

/** The peers the fetch keeps something of (see {@link HaveFirstFetch.trackedPeers}). */
export interface TrackedPeers {
  /** Peers with failures still remembered. */
  failures: number
  /** Peers that said "have" (worth dialling again when lost while wants are open). */
  holders: number
  /** Peers being dialled again. */
  redials: number
}

export interface HaveFirstFetch {
  /** Fetches one block (what the bitswap broker's `retrieve` now does). */
  retrieve(cid: CID, options?: RetrieveOptions): Promise<Uint8Array>
  /**
   * Asks `peer` again, now, for what it was asked and has not answered (its kept stream was
   * lost, ADR 0062): the want-blocks it is the target of, the want-haves it left unanswered.
   */
  resendTo(peer: PeerId): void
  /**
   * How many peers the fetch keeps something of: each table holds connected peers, peers being
   * dialled again, and failures for `failureMemoryMs` (ADR 0090: they grew with every peer id
   * that ever said "have" or failed).
   */
  trackedPeers(): TrackedPeers
  /** Stops: pending fetches fail, the broker's own `retrieve` comes back. */
  stop(): void
}

interface Waiter {
  resolve(block: Uint8Array): void
  reject(reason: unknown): void
  onProgress?: ((event: Event) => void) | undefined
  detach(): void
}

interface Want {
  cid: CID
  waiters: Set<Waiter>
  /** Peers sent a want-have (or want-block) for it: they get the cancel. */
  asked: Set<string>
  /** Peers that said "have". */
  haves: Set<string>
  /** Peers that answered the want-have ("have" or "don't have"). */
  answered: Set<string>
  /** Set while the first "have" waits for the other answers. */
  gather?: NodeJS.Timeout | undefined
  /** Peers that failed this want (tried after the others only). */
  failed: Set<string>
  /** The one peer asked for the block now. */
  target?: string | undefined
  /** The target was asked want-block straight away (it was the only peer connected). */
  direct?: boolean
  /** When the target was asked, or (no target) when want-have was last sent. */
  since: number
  /** Ends the provider search started for it (kad-dht nodes). */
  discovery: AbortController
}

const keyOf = (cid: CID) => base64.encode(cid.multihash.bytes)

/**
 * The reason a want's provider search is ended with, one for every want: `abort()` without a
 * reason builds a `DOMException` (with its stack trace) per block fetched, 0.6 % of a fetch's
 * event loop in `bench/fetch.ts` (ADR 0061). Nothing reads it: the search's errors are dropped.
 */
const WANT_ENDED = new Error('The want ended')

const progress = (waiters: Iterable<Waiter>, type: string, detail: unknown) => {
  for (const w of waiters) w.onProgress?.(new CustomEvent(type, { detail }))
}

export function createHaveFirstFetch(
  components: HaveFirstComponents,
  init: HaveFirstInit,
): HaveFirstFetch {
  const { broker } = components
  const { network, wantList, peerWantLists } = broker.bitswap
  const timeoutMs = init.timeoutMs
  const failureMemoryMs = init.failureMemoryMs ?? FAILURE_MEMORY_MS
  const wants = new Map<string, Want>()
  const peers = new Map<string, PeerId>()
  const outstanding = new Map<string, number>()
  const failures = new Map<string, { count: number; last: number }>()
  /** Blocks just handed out, oldest first (see `RECENT_MS`). */
  const recent = new Map<string, { block: Uint8Array; at: number }>()
  /**
   * When each peer last sent us a block we wanted (a busy peer is not a late one). Only a wanted
   * block counts: a "have" or a block nobody asked for costs a liar nothing, and counting them
   * let a peer that never sends the block keep each want-block five resend times (ADR 0090).
   */
  const lastHeard = new Map<string, number>()
  /**
   * Peers that said "have" to some want (worth dialling again when lost): kept while connected
   * or dialled again, not for every peer id ever heard.
   */
  const holders = new Set<string>()
  for (const peer of [...wantList.peers.keys(), ...components.connectedPeers()]) {
    peers.set(peer.toString(), peer)
  }

  const loadOf = (peer: string): PeerLoad => {
    const id = peers.get(peer)
    const failed = failures.get(peer)
    const recent = failed && Date.now() - failed.last < failureMemoryMs ? failed.count : 0
    return {
      outstanding: outstanding.get(peer) ?? 0,
      failures: recent,
      // an origin (or a peer that is done) asks nothing of us: it serves last
      source: id === undefined || (peerWantLists.ledgerMap.get(id)?.wants.size ?? 0) === 0,
    }
  }

  const send = (peer: string, want: Want, kind: 'have' | 'block' | 'cancel') => {
    const id = peers.get(peer)
    if (!id) return
    outbox.add(id, want.cid, kind)
    if (kind !== 'cancel' && !want.asked.has(peer)) {
      want.asked.add(peer)
      progress(want.waiters, 'bitswap:send-wantlist', id)
    }
  }

  const clearTarget = (want: Want) => {
    if (want.target === undefined) return
    outstanding.set(want.target, Math.max(0, (outstanding.get(want.target) ?? 1) - 1))
    want.target = undefined
    want.direct = false
  }

  const noteFailure = (want: Want, peer: string) => {
    want.failed.add(peer)
    const f = failures.get(peer) ?? { count: 0, last: 0 }
    failures.set(peer, { count: f.count + 1, last: Date.now() })
  }

  /** Sends the want-block to the cheapest peer that has the block, if any. */
  const request = (want: Want) => {
    if (want.target !== undefined) return
    const connected = [...want.haves].filter((p) => peers.has(p))
    const fresh = connected.filter((p) => !want.failed.has(p))
    // every haver failed once: try them again (a lost message, not a liar) rather than stall
    const target = choosePeer(fresh.length > 0 ? fresh : connected, loadOf)
    want.since = Date.now()
    if (target === undefined) return
    want.target = target
    outstanding.set(target, (outstanding.get(target) ?? 0) + 1)
    send(target, want, 'block')
  }

  /**
   * With one peer connected, its "have" decides nothing (no other peer to spread over, none to
   * receive a duplicate from): the want-block goes to it at once, with `sendDontHave`. That
   * saves a round trip, and the serving side's reads of every block for the want-have, per
   * window. A "don't have" then is no failure; the block comes when the peer gets it (its want
   * stays), or the want-have goes out again after the interval.
   */
  const askDirect = (want: Want, peer: string) => {
    want.target = peer
    want.direct = true
    want.since = Date.now()
    outstanding.set(peer, (outstanding.get(peer) ?? 0) + 1)
    send(peer, want, 'block')
  }

  const askHave = (want: Want, only?: string) => {
    for (const peer of only === undefined ? peers.keys() : [only]) {
      if (!want.asked.has(peer) || only !== undefined) send(peer, want, 'have')
    }
  }

  /** Forgets a want and cancels it at every peer asked. */
  const drop = (want: Want) => {
    const key = keyOf(want.cid)
    if (wants.get(key) !== want) return
    wants.delete(key)
    clearTimeout(want.gather)
    clearTarget(want)
    want.discovery.abort(WANT_ENDED)
    for (const peer of want.asked) send(peer, want, 'cancel')
  }

  const finish = (want: Want, block: Uint8Array, sender: PeerId) => {
    drop(want)
    const key = keyOf(want.cid)
    recent.delete(key)
    recent.set(key, { block, at: Date.now() })
    if (recent.size > RECENT_BLOCKS) recent.delete(recent.keys().next().value as string)
    failures.delete(sender.toString())
    for (const w of want.waiters) {
      w.detach()
      w.onProgress?.(new CustomEvent('bitswap:block', { detail: { cid: want.cid, sender } }))
      w.resolve(block)
    }
  }

  const onBlock = (event: Event) => {
    const { sender, cid, block } = (event as CustomEvent<BlockEventDetail>).detail
    // bitswap hashed the bytes it received to make `cid`; a want is found by the whole multihash
    // (code, length, digest), so a block found here hashes to the CID wanted (a forged block, e.g.
    // the digest under an identity-hash prefix, is found by none); helia's storage checks again
    const want = wants.get(keyOf(cid))
    if (!want) return
    lastHeard.set(sender.toString(), Date.now())
    // a peer that sent a block holds the content (asked want-block at once, it never said "have")
    holders.add(sender.toString())
    finish(want, block, sender)
  }

  const onPresence = (event: Event) => {
    const { sender, cid, has, block } = (event as CustomEvent<PresenceEventDetail>).detail
    if (block != null) return // a block: `onBlock` has it
    const want = wants.get(keyOf(cid))
    if (!want) return
    const peer = sender.toString()
    want.answered.add(peer)
    if (has) {
      want.haves.add(peer)
      holders.add(peer)
    } else want.haves.delete(peer)
    if (want.target === undefined && want.haves.size > 0) {
      const waiting = [...want.asked].some((p) => peers.has(p) && !want.answered.has(p))
      if (!waiting) {
        clearTimeout(want.gather)
        want.gather = undefined
        request(want)
      } else {
        want.gather ??= setTimeout(() => {
          want.gather = undefined
          request(want)
        }, GATHER_MS)
      }
      return
    }
    if (has) return
    if (want.target === peer) {
      if (!want.direct) noteFailure(want, peer)
      clearTarget(want)
      request(want)
    }
  }

  const onConnected = (event: Event) => {
    const peer = (event as CustomEvent<PeerId>).detail
    const key = peer.toString()
    peers.set(key, peer)
    clearTimeout(redials.get(key)?.timer)
    redials.delete(key)
    for (const want of wants.values()) {
      // the only peer, and the want asked of nobody yet (the fetch started before bitswap
      // reported the connection): its "have" would decide nothing, as in `retrieve`
      if (peers.size === 1 && want.target === undefined && want.asked.size === 0) {
        askDirect(want, key)
      } else askHave(want, key)
    }
  }

  // peers that said "have" once and lost their connection while wants are open: dialled again
  const redials = new Map<string, { attempts: number; timer?: NodeJS.Timeout | undefined }>()
  const redialing = new AbortController()
  const redial = (peer: PeerId) => {
    const key = peer.toString()
    const state = redials.get(key) ?? { attempts: 0 }
    redials.set(key, state)
    if (state.attempts >= REDIAL_ATTEMPTS) return forget(key)
    const delay = REDIAL_FIRST_DELAY_MS * 2 ** state.attempts
    state.attempts++
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (peers.has(key)) return
      if (wants.size === 0) return forget(key)
      // connected again: `onConnected` asks it for the open wants
      components.dial(peer, { signal: redialing.signal }).catch(() => redial(peer))
    }, delay)
    state.timer.unref()
  }

  /** Drops a peer that is gone and not dialled again. */
  const forget = (key: string) => {
    clearTimeout(redials.get(key)?.timer)
    redials.delete(key)
    holders.delete(key)
  }

  const onDisconnected = (event: Event) => {
    const peer = (event as CustomEvent<PeerId>).detail
    const key = peer.toString()
    if (wants.size > 0 && holders.has(key)) redial(peer)
    else forget(key)
    peers.delete(key)
    outstanding.delete(key)
    lastHeard.delete(key)
    for (const want of wants.values()) {
      want.haves.delete(key)
      want.asked.delete(key)
      want.answered.delete(key)
      if (want.target === key) {
        want.target = undefined
        request(want)
      }
    }
  }

  // a message that could not be sent: its want-block goes to the next peer at once
  const onSendError = (peer: PeerId) => {
    const key = peer.toString()
    for (const want of wants.values()) {
      want.asked.delete(key)
      if (want.target === key) {
        noteFailure(want, key)
        clearTarget(want)
        request(want)
      }
    }
  }
  const outbox: Outbox = createOutbox(network, onSendError)

  // ADR 0041's safety net, per want: no block `timeoutMs` after the last send → send again
  const tick = () => {
    const now = Date.now()
    for (const [peer, failed] of failures) {
      if (now - failed.last >= failureMemoryMs) failures.delete(peer)
    }
    for (const want of wants.values()) {
      if (now - want.since < timeoutMs) continue
      // a target still sending us other blocks is busy, not late: it gets up to five intervals
      // (a loaded owner serving eight executors; re-asking elsewhere would bring duplicates)
      const heard = want.target === undefined ? undefined : lastHeard.get(want.target)
      if (heard !== undefined && now - heard < timeoutMs && now - want.since < 5 * timeoutMs) {
        continue
      }
      progress(want.waiters, WANT_RESENT_EVENT, want.cid)
      if (want.target !== undefined) {
        const late = want.target
        noteFailure(want, late)
        clearTarget(want)
        request(want)
        // moved on: the late peer's want is cancelled, so a block it has not sent yet never comes
        if (want.target !== undefined && want.target !== late) send(late, want, 'cancel')
        // (the only haver was late: it is asked again; the serving side serves a re-sent want)
        if (want.target !== undefined) continue
      }
      // nobody has answered "have" (a lost message, a peer that got the block since): ask all
      want.asked.clear()
      want.answered.clear()
      want.since = now
      askHave(want)
    }
  }
  const timer = setInterval(tick, Math.max(10, Math.floor(timeoutMs / 4)))
  timer.unref()

  network.addEventListener('peer:connected', onConnected)
  network.addEventListener('peer:disconnected', onDisconnected)
  wantList.addEventListener('block', onBlock)
  wantList.addEventListener('presence', onPresence)

  const retrieve = (cid: CID, options: RetrieveOptions = {}): Promise<Uint8Array> => {
    const { signal } = options
    if (signal?.aborted) return Promise.reject(signal.reason)
    const key = keyOf(cid)
    const held = recent.get(key)
    if (held !== undefined) {
      if (Date.now() - held.at <= RECENT_MS) return Promise.resolve(held.block)
      recent.delete(key)
    }
    let want = wants.get(key)
    const fresh = want === undefined
    if (!want) {
      want = {
        cid,
        waiters: new Set(),
        asked: new Set(),
        haves: new Set(),
        answered: new Set(),
        failed: new Set(),
        since: Date.now(),
        discovery: new AbortController(),
      }
      wants.set(key, want)
    }
    const current = want
    const block = new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => {
        current.waiters.delete(waiter)
        if (current.waiters.size === 0) drop(current)
        reject(signal?.reason)
      }
      const waiter: Waiter = {
        resolve,
        reject,
        onProgress: options.onProgress,
        detach: () => signal?.removeEventListener('abort', onAbort),
      }
      current.waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (!fresh) {
        for (const peer of current.asked) {
          const id = peers.get(peer)
          if (id) progress([waiter], 'bitswap:send-wantlist', id)
        }
      }
    })
    if (fresh) {
      const [only, ...others] = peers.keys()
      if (only !== undefined && others.length === 0) askDirect(current, only)
      else askHave(current)
      // as bitswap's own `want`: providers found by routing (kad-dht) are dialled
      network.findAndConnect(cid, { signal: current.discovery.signal }).catch(() => {})
    }
    return block
  }

  const resendTo = (peer: PeerId) => {
    const key = peer.toString()
    if (!peers.has(key)) return
    for (const want of wants.values()) {
      // the want keeps its deadline: a peer that resets every stream (and so is asked again
      // each time) is still left once the resend time passes without its block
      if (want.target === key) send(key, want, 'block')
      else if (want.asked.has(key) && !want.answered.has(key)) send(key, want, 'have')
    }
  }

  const ownRetrieve = broker.retrieve
  broker.retrieve = retrieve
  return {
    retrieve,
    resendTo,
    trackedPeers: () => ({ failures: failures.size, holders: holders.size, redials: redials.size }),
    stop() {
      clearInterval(timer)
      outbox.stop()
      redialing.abort()
      for (const { timer } of redials.values()) clearTimeout(timer)
      network.removeEventListener('peer:connected', onConnected)
      network.removeEventListener('peer:disconnected', onDisconnected)
      wantList.removeEventListener('block', onBlock)
      wantList.removeEventListener('presence', onPresence)
      broker.retrieve = ownRetrieve
      recent.clear()
      for (const want of wants.values()) {
        want.discovery.abort(WANT_ENDED)
        for (const w of want.waiters) {
          w.detach()
          w.reject(new Error('The node stopped'))
        }
      }
      wants.clear()
    },
  }
}
