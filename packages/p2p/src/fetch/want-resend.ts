/**
 * Bitswap wants that get no block are asked again (ADR 0041). `@helia/bitswap` 4 sends each
 * want to a peer once and waits for the block forever, and a block message can be lost on the
 * way: the sender's 10 s send timeout (counted from when the message was queued, so a loaded
 * sender drops whole batches), a reset stream. The sender marks the want answered anyway and
 * forgets it 5 s later, the asker still counts it as sent: the fetch stalled until the caller's
 * own timeout (the executor's `CAPSULE_FETCH_TIMEOUT`, the OCI pull's stall).
 *
 * Three repairs of that code, on the node's own bitswap instance (helia and bitswap are pinned
 * to exact versions, as `load-helia.ts` relies on; `want-resend.test.ts` fails if the shapes
 * read here change):
 *
 * 1. **Resend.** A want with no block `resendMs` after it was last sent is sent again to every
 *    connected peer (the same one, or another that has the block by now).
 * 2. **A re-sent want is served.** The serving side updated an expired "sent" entry in place,
 *    then removed it as expired before looking for work: a want asked again after the
 *    do-not-resend window was lost. Expired entries are now removed before the wants are read.
 * 3. **A want keeps only its CID.** The serving side's ledger keeps each want (up to 1 024 per
 *    peer, a want for a block this node lacks until the peer cancels it or leaves) with a CID
 *    decoded as a view into the received message: one 36-byte want kept the whole message, up
 *    to 4 MiB, alive. A peer sending wants padded with unasked blocks held ~4 GiB of a serving
 *    node (review: 50 such wants, 190 MiB). Each want's CID bytes are copied before the ledger
 *    reads them (ADR 0090).
 */
import type { Helia } from '@helia/interface'
import type { CID } from 'multiformats/cid'

/** Default: a want with no block this long after it was last sent is sent again. */
export const WANT_RESEND_MS = 10_000

/** The longest a Node timer waits (a longer delay fires after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** The progress event a caller's `onProgress` gets when one of its wants is sent again. */
export const WANT_RESENT_EVENT = 'bitswap:want-resent'

interface WantEntry {
  cid: CID
  cancel: boolean
  onProgress: { onProgress: (event: CustomEvent<CID>) => void }[]
}

interface PeerKeyedMap<V> {
  has(peer: unknown): boolean
  set(peer: unknown, value: V): unknown
  get(peer: unknown): V | undefined
  values(): IterableIterator<V>
}

/** The parts of `@helia/bitswap` 4's `WantList` (the asking side) used here. */
interface WantList {
  wants: Map<string, WantEntry>
  peers: PeerKeyedMap<Set<string>>
  sendMessagesDebounced(): Promise<void>
}

/** The parts of its `PeerWantLists` (the serving side) used here. */
interface PeerWantLists {
  ledgerMap: PeerKeyedMap<{ removeExpiredWants(): void }>
  receiveMessage(peer: unknown, message: unknown): void
}

interface BitswapInternals {
  wantList: WantList
  peerWantLists: PeerWantLists
}

function bitswapOf(helia: Helia): BitswapInternals {
  const brokers = (helia as unknown as { blockBrokers?: { name: string }[] }).blockBrokers ?? []
  const broker = brokers.find((b) => b.name === 'bitswap') as
    | { bitswap?: Partial<BitswapInternals> }
    | undefined
  const bitswap = broker?.bitswap
  const wantList = bitswap?.wantList
  const peerWantLists = bitswap?.peerWantLists
  if (
    !(wantList?.wants instanceof Map) ||
    typeof wantList.peers?.values !== 'function' ||
    typeof wantList.sendMessagesDebounced !== 'function' ||
    typeof peerWantLists?.receiveMessage !== 'function' ||
    typeof peerWantLists.ledgerMap?.get !== 'function'
  ) {
    // a helia or bitswap upgrade moved what is repaired here: fail at start, not in a fetch
    throw new Error('@helia/bitswap internals are not the ones want-resend.ts repairs')
  }
  return { wantList, peerWantLists }
}

/** 3. Each want's CID bytes copied out of the received message (see the file's comment). */
function ownWantBytes(message: unknown): void {
  const entries = (message as { wantlist?: { entries?: unknown } } | undefined)?.wantlist?.entries
  if (!Array.isArray(entries)) return
  for (const entry of entries as { cid?: unknown }[]) {
    // a CID is a few dozen bytes; `slice` copies into a buffer of its own
    if (entry?.cid instanceof Uint8Array) entry.cid = entry.cid.slice()
  }
}

export interface WantResend {
  /**
   * Sends every open want sent to `peer` again now (its kept stream was lost, ADR 0062): a
   * want is otherwise sent again only after `resendMs`.
   */
  resendTo(peer: unknown): void
  /** Stops the resend timer (the repairs stay: they die with the node). */
  stop(): void
}

/**
 * Installs the repairs on a started helia's bitswap, checking every `resendMs / 4`.
 * @throws {Error} if helia has no bitswap broker of the expected shape.
 */
export function installWantResend(helia: Helia, resendMs: number = WANT_RESEND_MS): WantResend {
  const { wantList, peerWantLists } = bitswapOf(helia)

  // 2. the serving side drops expired "sent" entries before it reads a message's wants
  const receiveMessage = peerWantLists.receiveMessage.bind(peerWantLists)
  peerWantLists.receiveMessage = (peer, message) => {
    peerWantLists.ledgerMap.get(peer)?.removeExpiredWants()
    ownWantBytes(message)
    receiveMessage(peer, message)
  }

  // 1. wants with no block for `resendMs` since they were last sent (or first seen) go out again
  const lastSent = new Map<string, number>()
  const check = () => {
    const now = Date.now()
    let resent = 0
    for (const [key, entry] of wantList.wants) {
      if (entry.cancel) continue
      const since = lastSent.get(key)
      if (since === undefined) {
        lastSent.set(key, now)
        continue
      }
      if (now - since < resendMs) continue
      lastSent.set(key, now)
      resent++
      for (const sent of wantList.peers.values()) sent.delete(key)
      for (const { onProgress } of entry.onProgress) {
        onProgress(new CustomEvent<CID>(WANT_RESENT_EVENT, { detail: entry.cid }))
      }
    }
    for (const key of lastSent.keys()) if (!wantList.wants.has(key)) lastSent.delete(key)
    if (resent > 0) wantList.sendMessagesDebounced().catch(() => {})
  }
  const timer = setInterval(check, Math.max(10, Math.floor(resendMs / 4)))
  timer.unref()
  return {
    resendTo(peer) {
      const sent = wantList.peers.get(peer)
      if (sent === undefined || sent.size === 0) return
      // bitswap's own send then puts every want not marked sent to the peer in its message
      sent.clear()
      wantList.sendMessagesDebounced().catch(() => {})
    },
    stop: () => clearInterval(timer),
  }
}
