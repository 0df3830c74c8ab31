/**
 * The serving side sends each block as soon as it is read (issue #17, ADR 0057).
 * `@helia/bitswap` 4's ledger answers a peer's wants by reading every wanted block, one after
 * the other, and only then sending them all in one batch: the first block of a window waited
 * for the last one's read, a peer that asked for a second window got nothing until the whole
 * first batch was on the wire, and the asking side's next window could never overlap the one
 * before (its last block and its first came in the same batch). Here each block read goes out
 * as its own message while the next is read, in the order the wants came, at most
 * `SERVE_READ_AHEAD` blocks read and not yet sent; presences (have, don't-have) go out with
 * the first message. The rest is the ledger's: which wants are served, their states, the
 * do-not-resend window, the accounting. Installed on the node's own bitswap, as ADRs 0041, 0044
 * and 0050 do; the shapes used are checked at start.
 */
import type { Helia } from '@helia/interface'
import type { PeerId } from '@libp2p/interface'
import { base64 } from 'multiformats/bases/base64'
import type { CID } from 'multiformats/cid'
import { readForServing } from '../../filestore/served-read-buffers.ts'
import { bitswapBroker } from '../have-first/bitswap-parts.ts'
import { type EncodableMessage, varint } from './encode.ts'

/**
 * Blocks read ahead of the one being sent, and blocks handed to the network and not yet sent,
 * per peer: at most twice this many blocks are held, whatever a peer asks (the ledger's own
 * batch held every block asked, up to its 1 024 wants).
 */
export const SERVE_READ_AHEAD = 2

/**
 * Bytes of blocks the node's serving side holds at once, every peer together, by default
 * (ADR 0066): a block is counted from its read until its message is done (handed to the
 * connection, and the connection's backlog back under `CONNECTION_BACKLOG_BYTES`). 16 peers
 * served at full speed (4 blocks each); past it, the next read waits its turn. The per-peer
 * bound alone let many peers that ask and never read take what they liked (review).
 */
export const SERVE_MEMORY_BYTES = 64 * 1_048_576

/** What a block is counted before its read (a capsule leaf: 1 MiB); its size once read. */
const BLOCK_CHARGE = 1_048_576

/** A count of bytes with a limit; a take past it waits its turn (first come, first served). */
class ByteBudget {
  held = 0
  readonly #limit: number
  readonly #waiting: { bytes: number; go: () => void }[] = []
  constructor(limit: number) {
    this.#limit = limit
  }
  /** Resolves once `bytes` fit (at once when nothing is held: one block larger than the limit). */
  take(bytes: number): Promise<void> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.held += bytes
      return Promise.resolve()
    }
    return new Promise((go) => this.#waiting.push({ bytes, go }))
  }
  /** Counts `bytes` more (negative: fewer) without waiting: a block read larger than its charge. */
  adjust(bytes: number): void {
    this.held += bytes
    if (bytes < 0) this.#next()
  }
  give(bytes: number): void {
    this.held -= bytes
    this.#next()
  }
  #fits(bytes: number): boolean {
    return this.held === 0 || this.held + bytes <= this.#limit
  }
  #next(): void {
    while (this.#waiting.length > 0) {
      const first = this.#waiting[0] as { bytes: number; go: () => void }
      if (!this.#fits(first.bytes)) return
      this.#waiting.shift()
      this.held += first.bytes
      first.go()
    }
  }
}

/** A want as the ledger keeps it (`@helia/bitswap` 4, `peer-want-lists/ledger.js`). */
interface LedgerWant {
  cid: CID
  wantType: 'WantHave' | 'WantBlock'
  status: 'want' | 'sending' | 'sent'
  sendDontHave: boolean
  sentDoNotHave?: boolean
  haveBlock?: boolean
  expires?: number | undefined
}

interface ReadOptions {
  signal?: AbortSignal
  /** helia's storage: a block it does not hold is not asked of the network. */
  offline?: boolean
}

/** The parts of a ledger (what one peer asks of this node) used here. */
interface Ledger {
  peerId: PeerId
  wants: Map<string, LedgerWant>
  blockstore: {
    get(cid: CID, options?: ReadOptions): AsyncIterable<Uint8Array>
  }
  network: { sendMessage(peer: PeerId, message: EncodableMessage, options?: object): Promise<void> }
  maxSizeReplaceHasWithBlock: number
  doNotResendBlockWindow: number
  removeExpiredWants(): void
  sentBytes(n: number): void
  sendBlocksToPeer(options?: ReadOptions): Promise<void>
  /** Queues a `sendBlocksToPeer` (one at a time per peer); no message: no new wants. */
  queueSendOperation(message?: undefined): void
}

interface LedgerMap {
  get(peer: PeerId): unknown
  set(peer: PeerId, ledger: Ledger): unknown
  values(): IterableIterator<Ledger>
}

export interface ServeAsRead {
  /**
   * Answers `peer`'s open wants again: the blocks and presences sent to it that it has not
   * cancelled since (its kept stream was lost, ADR 0062). A want the peer asks again within the
   * ledger's do-not-resend window is otherwise ignored: asking again brings nothing back.
   */
  answerAgain(peer: PeerId): void
  /** Bytes of blocks held now: read, and their messages not yet done (see `SERVE_MEMORY_BYTES`). */
  heldBytes(): number
  /** New ledgers are the ledger's own again (the ones patched keep serving as read). */
  stop(): void
}

export interface ServeAsReadInit {
  /** Bytes of blocks held at once, every peer together. Default {@link SERVE_MEMORY_BYTES}. */
  memoryBytes?: number
}

function ledgerMapOf(helia: Helia): LedgerMap {
  const map = (
    bitswapBroker(helia).bitswap.peerWantLists as unknown as { ledgerMap?: Partial<LedgerMap> }
  ).ledgerMap
  if (
    typeof map?.get !== 'function' ||
    typeof map.set !== 'function' ||
    typeof map.values !== 'function'
  ) {
    throw new Error('@helia/bitswap internals are not the ones serve-as-read.ts drives')
  }
  return map as LedgerMap
}

function isLedger(value: unknown): value is Ledger {
  const l = value as Partial<Ledger> | undefined
  return (
    l?.wants instanceof Map &&
    typeof l.blockstore?.get === 'function' &&
    typeof l.network?.sendMessage === 'function' &&
    typeof l.maxSizeReplaceHasWithBlock === 'number' &&
    typeof l.doNotResendBlockWindow === 'number' &&
    typeof l.removeExpiredWants === 'function' &&
    typeof l.sentBytes === 'function' &&
    typeof l.sendBlocksToPeer === 'function' &&
    typeof l.queueSendOperation === 'function'
  )
}

const emptyMessage = (): EncodableMessage => ({
  wantlist: new Map(),
  blocks: new Map(),
  blockPresences: new Map(),
})

/** Prefixes made, by CID shape: a node serves a handful of shapes (raw and dag-pb, SHA-256). */
const prefixes = new Map<string, Uint8Array>()
const PREFIX_SHAPES_KEPT = 64

/**
 * Bitswap 1.2.0's block prefix: CID version, codec, hash code, digest length. Made once per
 * shape (the same few bytes for every leaf of a capsule; they are only ever read, by the stream).
 */
function prefixOf(cid: CID): Uint8Array {
  const shape = `${cid.version}.${cid.code}.${cid.multihash.code}.${cid.multihash.size}`
  let prefix = prefixes.get(shape)
  if (prefix === undefined) {
    prefix = Uint8Array.from([
      ...varint(cid.version),
      ...varint(cid.code),
      ...varint(cid.multihash.code),
      ...varint(cid.multihash.size),
    ])
    if (prefixes.size < PREFIX_SHAPES_KEPT) prefixes.set(shape, prefix)
  }
  return prefix
}

const keyOf = (cid: CID) => base64.encode(cid.multihash.bytes)

/** A block read from the store as one array (one chunk, the usual case, is not copied). */
async function readAll(parts: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const part of parts) chunks.push(part)
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks)
}

/** What the ledger's loop decided for one want: a block to send, a presence, or nothing. */
type Answer = { block: Uint8Array } | { presence: 'HaveBlock' | 'DoNotHaveBlock' } | undefined

/** The ledger's own decision for one want (same states, same order of checks). */
async function answer(ledger: Ledger, want: LedgerWant, options?: ReadOptions): Promise<Answer> {
  try {
    // offline: helia's storage would otherwise fetch a block it does not hold from the network.
    // (The ledger asks `has` first, then `get`, whose storage asks `has` again: a file-system
    // lookup and a lock each, per block served from a data folder; ADR 0061.)
    // read for serving: a reference's bytes may land in a reused buffer, given back once sent
    const block = await readForServing(() =>
      readAll(ledger.blockstore.get(want.cid, { ...options, offline: true })),
    )
    // a cancel (or a new want) came in while the block was read
    if (want.status !== 'sending') return undefined
    want.status = 'sent'
    want.expires = Date.now() + ledger.doNotResendBlockWindow
    if (want.wantType === 'WantHave' && block.byteLength >= ledger.maxSizeReplaceHasWithBlock) {
      return { presence: 'HaveBlock' }
    }
    return { block }
  } catch (err) {
    if (!NOT_HELD.has((err as Error).name)) {
      // Thrown, any other error left every other want of the batch `sending`, never served
      // (review). A passing one (EMFILE, EIO, an abort) leaves the want to be asked again.
      if ((err as { code?: unknown }).code !== 'CAPSULE_STORE') {
        want.status = 'want'
        return undefined
      }
      // A block held but not readable as its CID (a capsule file changed under a reference
      // entry): not served, and not read again for this want until it expires.
      want.status = 'sent'
      want.expires = Date.now() + ledger.doNotResendBlockWindow
      if (!want.sendDontHave || want.sentDoNotHave === true) return undefined
      want.sentDoNotHave = true
      return { presence: 'DoNotHaveBlock' }
    }
    // asked again later; may be dropped first if the want list grows too large
    want.status = 'want'
    want.haveBlock = false
    if (!want.sendDontHave || want.sentDoNotHave === true) return undefined
    want.sentDoNotHave = true
    return { presence: 'DoNotHaveBlock' }
  }
}

/** The errors of a block this node does not hold: the store's, and helia's storage offline. */
const NOT_HELD = new Set(['NotFoundError', 'BlockNotFoundWhileOfflineError'])

/**
 * `answer`, counted against the node's budget: the charge is the block's size once read, and is
 * given back when `sent` (the block's message) is done; nothing to send gives it back at once.
 */
async function charged(
  budget: ByteBudget,
  ledger: Ledger,
  want: LedgerWant,
  options?: ReadOptions,
): Promise<{ answer: Answer; charge: number }> {
  await budget.take(BLOCK_CHARGE)
  let answered: Answer
  try {
    answered = await answer(ledger, want, options)
  } catch (err) {
    budget.give(BLOCK_CHARGE)
    throw err
  }
  if (answered === undefined || !('block' in answered)) {
    budget.give(BLOCK_CHARGE)
    return { answer: answered, charge: 0 }
  }
  budget.adjust(answered.block.byteLength - BLOCK_CHARGE)
  return { answer: answered, charge: answered.block.byteLength }
}

/** The ledger's `sendBlocksToPeer`, sending each block as it is read. */
async function serve(ledger: Ledger, budget: ByteBudget, options?: ReadOptions): Promise<void> {
  ledger.removeExpiredWants()
  const unsent = [...ledger.wants.values()].filter((w) => w.status === 'want')
  if (unsent.length === 0) return
  for (const want of unsent) want.status = 'sending'
  const peer = ledger.peerId
  // the messages of this batch go out one after the other, in want order; one that fails is
  // the network's to report (as with the ledger's own batch), the next still goes
  let chain: Promise<void> = Promise.resolve()
  const send = (message: EncodableMessage, bytes: number) => {
    const sent = chain.then(async () => {
      await ledger.network.sendMessage(peer, message, options)
      ledger.sentBytes(bytes)
    })
    chain = sent.catch(() => {})
    return chain
  }
  // reads run ahead of the sends, in want order: the next blocks are read while one is sent
  const answers: Promise<{ answer: Answer; charge: number }>[] = []
  const readUpTo = (end: number) => {
    for (let i = answers.length; i < Math.min(end, unsent.length); i++) {
      const read = charged(budget, ledger, unsent[i] as LedgerWant, options)
      read.catch(() => {})
      answers.push(read)
    }
  }
  // blocks handed to the network and not yet sent: with the reads ahead, the bound on memory
  const sending: Promise<void>[] = []
  let presences = emptyMessage()
  for (let i = 0; i < unsent.length; i++) {
    readUpTo(i + SERVE_READ_AHEAD)
    const want = unsent[i] as LedgerWant
    const { answer: result, charge } = await (answers[i] as Promise<{
      answer: Answer
      charge: number
    }>)
    answers[i] = Promise.resolve({ answer: undefined, charge: 0 })
    if (result === undefined) continue
    if ('presence' in result) {
      presences.blockPresences.set(keyOf(want.cid), { cid: want.cid.bytes, type: result.presence })
      continue
    }
    // a block: its own message, with any presences gathered so far
    const message = presences
    presences = emptyMessage()
    message.blocks.set(keyOf(want.cid), { prefix: prefixOf(want.cid), data: result.block })
    const sent = send(message, result.block.byteLength)
    void sent.finally(() => budget.give(charge))
    sending.push(sent)
    while (sending.length >= SERVE_READ_AHEAD) await sending.shift()
  }
  if (presences.blockPresences.size > 0) send(presences, 0)
  await chain
}

/** Wants already answered again once (a lost stream does not earn a want a second repair). */
const answeredAgain = new WeakSet<LedgerWant>()

/**
 * Puts the wants answered to a peer back to "want", and the don't-haves back to unsent, then
 * serves them: the answers were on a stream that ended abnormally, and which of them arrived is
 * not known. Only answers still within the ledger's do-not-resend window (`expires`), and each
 * want at most once: a peer that never cancels (stock helia's bitswap sends no cancels) keeps
 * its wants "sent" until they expire, and a peer whose streams keep resetting must not have
 * them all sent again each time. A block sent twice is checked against its CID there, as any.
 */
function answerAgain(ledger: Ledger, now = Date.now()): void {
  let again = 0
  for (const want of ledger.wants.values()) {
    if (answeredAgain.has(want)) continue
    if (want.status === 'sent') {
      if (want.expires !== undefined && want.expires < now) continue
      want.status = 'want'
    } else if (want.status === 'want' && want.sentDoNotHave === true) {
      want.sentDoNotHave = false
    } else {
      continue
    }
    answeredAgain.add(want)
    again++
  }
  if (again > 0) ledger.queueSendOperation()
}

/**
 * Makes every ledger of the node's bitswap (one per peer that asks it for blocks) send each
 * block as it is read.
 * @throws {Error} if helia's bitswap is not of the expected shape.
 */
export function installServeAsRead(helia: Helia, init: ServeAsReadInit = {}): ServeAsRead {
  const ledgers = ledgerMapOf(helia)
  const budget = new ByteBudget(init.memoryBytes ?? SERVE_MEMORY_BYTES)
  const ownSet = ledgers.set
  let installed = true
  const patch = (ledger: Ledger) => {
    if (!isLedger(ledger)) {
      throw new Error('@helia/bitswap ledger is not the one serve-as-read.ts drives')
    }
    ledger.sendBlocksToPeer = (options) => serve(ledger, budget, options)
  }
  for (const ledger of ledgers.values()) patch(ledger)
  ledgers.set = (peer, ledger) => {
    if (installed) patch(ledger)
    return ownSet.call(ledgers, peer, ledger)
  }
  return {
    answerAgain(peer) {
      const ledger = ledgers.get(peer)
      if (isLedger(ledger)) answerAgain(ledger)
    },
    heldBytes: () => budget.held,
    stop() {
      installed = false
      ledgers.set = ownSet
    },
  }
}
