/**
 * Have-first fetch (ADR 0044): several nodes pulling the same content from an owner and from
 * each other receive each block about once, the owner serves fewer copies when peers have the
 * blocks, and a peer that says "have" and then never sends (or sends a forged block) neither
 * stalls nor corrupts a fetch. Real helia + libp2p nodes on loopback; the only fault injected
 * is the lying peer. Before ADR 0044 every want-block went to every connected peer and every
 * holder sent the whole block (2-4 copies each here), and the forged block was handed to the
 * caller, whose check failed the fetch.
 */
import { randomBytes } from 'node:crypto'
import type { PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { code as RAW_CODE } from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installHaveFirst } from '../src/fetch/have-first/index.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const MiB = 1_048_576
const SIZE = 4 * MiB
/** Blocks a fetch asks for at once (`FETCH_WINDOW_BLOCKS` leaves of 1 MiB). */
const WINDOW = 8 * MiB
/** Short, so a lying peer costs seconds, not ten; not so short that a loaded box re-asks much. */
const RESEND_MS = 3_000

interface Ledger {
  bytesSent: number
  bytesReceived: number
}
interface Bitswap {
  network: { sendMessage(peer: PeerId, message: unknown): Promise<void> }
  peerWantLists: {
    ledgerMap: Map<unknown, Ledger>
    receiveMessage(peer: PeerId, message: WireMessage): void
  }
}
interface WireMessage {
  wantlist?: { entries: { cid: Uint8Array; wantType?: string; cancel?: boolean }[] }
}

const bitswapOf = (node: DigicapNode) =>
  (
    (
      node.helia as unknown as { blockBrokers: { name: string; bitswap: Bitswap }[] }
    ).blockBrokers.find((b) => b.name === 'bitswap') as { bitswap: Bitswap }
  ).bitswap

/** Block bytes `node` received from peers / sent to `to` (bitswap's ledgers). */
const received = (node: DigicapNode) =>
  [...bitswapOf(node).peerWantLists.ledgerMap.values()].reduce((n, l) => n + l.bytesReceived, 0)
const sentTo = (node: DigicapNode, to: DigicapNode[]) => {
  const ids = new Set(to.map((n) => n.peerId))
  let sent = 0
  for (const [peer, ledger] of bitswapOf(node).peerWantLists.ledgerMap) {
    if (ids.has(String(peer))) sent += ledger.bytesSent
  }
  return sent
}

const message = () => ({
  full: false,
  pendingBytes: 0,
  wantlist: new Map(),
  blocks: new Map(),
  blockPresences: new Map(),
})

/**
 * Makes `node` a liar: it answers every want-have "have", and every want-block with nothing
 * (`silent`) or with a forged block (`forged`: the wanted digest itself as the block, under an
 * identity-hash prefix, so its digest equals the wanted one).
 */
function lie(node: DigicapNode, mode: 'silent' | 'forged'): () => number {
  const bitswap = bitswapOf(node)
  let blockWants = 0
  bitswap.peerWantLists.receiveMessage = (peer, wire) => {
    const reply = message()
    for (const entry of wire.wantlist?.entries ?? []) {
      if (entry.cancel) continue
      const cid = CID.decode(entry.cid)
      const key = String(reply.blockPresences.size + reply.blocks.size)
      if (entry.wantType === 'WantHave') {
        reply.blockPresences.set(key, { cid: entry.cid, type: 'HaveBlock' })
        continue
      }
      blockWants++
      if (mode === 'forged') {
        const digest = cid.multihash.digest
        // varints of version, codec, hash code (identity, 0) and length: all below 128 here
        const prefix = Uint8Array.of(cid.version, cid.code, 0, digest.length)
        reply.blocks.set(key, { data: digest, prefix })
      }
    }
    if (reply.blockPresences.size + reply.blocks.size > 0) {
      bitswap.network.sendMessage(peer, reply).catch(() => {})
    }
  }
  return () => blockWants
}

async function fetchAll(
  node: DigicapNode,
  cid: string,
  onProgress?: (bytes: number) => void,
  timeoutMs = 60_000,
): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of heliaCapsuleStore(node.helia).get(cid, {
    ...(onProgress ? { onProgress } : {}),
    // generous: a loaded 2-core box; a second each when idle
    signal: AbortSignal.timeout(timeoutMs),
  })) {
    parts.push(chunk)
  }
  return Buffer.concat(parts)
}

/** When each node was last dialled, by its peer id (the dials of the last second). */
const dialled = new Map<string, number[]>()

/**
 * `from` dials `to`. Every node here is one host (127.0.0.1) for libp2p's inbound rate limit,
 * 5 connections per host per second (`inboundConnectionThreshold`): a sixth dial of one node
 * within a second is reset (ECONNRESET). Fetches fast enough put the owner's dials of three
 * tests within one second, so a dial waits until it is one of five in the last second.
 */
async function dial(from: DigicapNode, to: DigicapNode) {
  const recent = (dialled.get(to.peerId) ?? []).filter((at) => performance.now() - at < 1_100)
  if (recent.length >= 5) {
    await new Promise((r) => setTimeout(r, 1_100 - (performance.now() - (recent[0] as number))))
  }
  dialled.set(to.peerId, [...recent, performance.now()].slice(-5))
  return from.libp2p.dial(multiaddr(to.multiaddrs()[0] as string))
}

describe('the fetch option', () => {
  it('anything but have-first or broadcast is refused before anything starts (INVALID_ARGUMENT)', async () => {
    await expect(createDigicapNode({ fetch: 'flood' as never })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})

describe('have-first fetch between real nodes', () => {
  const nodes: DigicapNode[] = []
  const node = async () => {
    const n = await createDigicapNode({ wantResendMs: RESEND_MS, pubsub: false })
    nodes.push(n)
    return n
  }
  let content: Buffer
  let cid: string
  let owner: DigicapNode

  beforeAll(async () => {
    content = randomBytes(SIZE)
    owner = await node()
    cid = await heliaCapsuleStore(owner.helia).put(content)
  })
  afterAll(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
  })

  it('four nodes pulling from the owner and each other, one of them ahead, each receive the content about once', async () => {
    const fetchers = await Promise.all([node(), node(), node(), node()])
    for (const [i, f] of fetchers.entries()) {
      await dial(f, owner)
      for (const other of fetchers.slice(0, i)) await dial(f, other)
    }
    // the first is half-way when the others start: it holds blocks they want, as the owner does
    let halfway: () => void = () => {}
    const ahead = new Promise<void>((resolve) => {
      halfway = resolve
    })
    const first = fetchAll(fetchers[0] as DigicapNode, cid, (n) => {
      if (n >= SIZE / 2) halfway()
    })
    await ahead
    const got = await Promise.all([first, ...fetchers.slice(1).map((f) => fetchAll(f, cid))])
    for (const bytes of got) expect(bytes.equals(content)).toBe(true)
    for (const f of fetchers) expect(received(f)).toBeLessThanOrEqual(1.25 * SIZE)
  }, 60_000)

  it('with one seed connected to the owner, the owner serves about one copy and nobody receives duplicates', async () => {
    const fetchers = await Promise.all([node(), node(), node(), node()])
    await dial(fetchers[0] as DigicapNode, owner)
    for (const [i, f] of fetchers.entries()) {
      for (const other of fetchers.slice(0, i)) await dial(f, other)
    }
    // a whole window: the seed forwards blocks while the others still want them
    const window = randomBytes(WINDOW)
    const windowCid = await heliaCapsuleStore(owner.helia).put(window)
    const got = await Promise.all(fetchers.map((f) => fetchAll(f, windowCid)))
    for (const bytes of got) expect(bytes.equals(window)).toBe(true)
    expect(sentTo(owner, fetchers)).toBeLessThanOrEqual(1.25 * WINDOW)
    for (const f of fetchers) expect(received(f)).toBeLessThanOrEqual(1.25 * WINDOW)
  }, 60_000)

  it('when peers already hold the content, the owner serves clearly less than a copy per puller', async () => {
    const seeds = await Promise.all([node(), node()])
    await Promise.all(seeds.map((s) => heliaCapsuleStore(s.helia).put(content)))
    const pullers = await Promise.all([node(), node()])
    for (const p of pullers) {
      for (const source of [owner, ...seeds]) await dial(p, source)
    }
    const got = await Promise.all(pullers.map((p) => fetchAll(p, cid)))
    for (const bytes of got) expect(bytes.equals(content)).toBe(true)
    // spread over three holders: about a third each; before, the owner sent every puller a copy
    expect(sentTo(owner, pullers)).toBeLessThanOrEqual(0.6 * pullers.length * SIZE)
    for (const p of pullers) expect(received(p)).toBeLessThanOrEqual(1.25 * SIZE)
  }, 60_000)

  it('peers that say "have" and then send nothing, or a forged block, neither stall nor corrupt the fetch', async () => {
    // two windows of blocks, so that the second one is asked while every holder is connected
    const twoWindows = randomBytes(2 * WINDOW)
    const [seedA, seedB, silent, forger, puller] = await Promise.all([
      node(),
      node(),
      node(),
      node(),
      node(),
    ])
    const big = await heliaCapsuleStore(owner.helia).put(twoWindows)
    await Promise.all([seedA, seedB].map((s) => heliaCapsuleStore(s.helia).put(twoWindows)))
    const liars = [lie(silent, 'silent'), lie(forger, 'forged')]
    // the liars alone first: each says "have" and is asked for a block in turn (the second once
    // the first has timed out); then the honest holders come
    await dial(puller, silent)
    await dial(puller, forger)
    const fetching = fetchAll(puller, big)
    while (liars.some((blockWants) => blockWants() === 0)) {
      await new Promise((r) => setTimeout(r, 20))
    }
    for (const holder of [owner, seedA, seedB]) await dial(puller, holder)
    const bytes = await fetching
    expect(bytes.equals(twoWindows)).toBe(true)
    // the content once (from the three holders together), not once from each
    expect(received(puller)).toBeLessThanOrEqual(1.25 * twoWindows.length)
  }, 60_000)
  it('a peer that says "have" and resets every stream it is sent on is left after the resend time, not asked forever', async () => {
    // each reset makes the puller ask that peer again at once (ADR 0062); a repair resend must
    // not also restart the want's deadline, or the fetch never moves on to the holder
    const liar = await node()
    const puller = await node()
    lie(liar, 'silent')
    let resets = 0
    const wire = bitswapOf(liar).peerWantLists
    const answer = wire.receiveMessage.bind(wire)
    wire.receiveMessage = (peer, message) => {
      answer(peer, message)
      // after answering "have": the stream the asker keeps for its wants is reset
      for (const stream of liar.libp2p.getConnections().flatMap((c) => c.streams)) {
        if (stream.protocol === '/ipfs/bitswap/1.2.0' && stream.direction === 'inbound') {
          stream.abort(new Error('reset by the liar'))
          resets++
        }
      }
    }
    await dial(puller, liar)
    const started = performance.now()
    const fetching = fetchAll(puller, cid, undefined, 30_000)
    while (resets === 0) await new Promise((r) => setTimeout(r, 20))
    await dial(puller, owner)
    const bytes = await fetching
    expect(bytes.equals(content)).toBe(true)
    expect(resets).toBeGreaterThan(1)
    // one resend time to leave the liar, and the fetch (a second or two on a loaded box)
    expect(performance.now() - started).toBeLessThan(3 * RESEND_MS)
  }, 60_000)

  it('with one peer connected, every block is asked as want-block at once: no want-have at all', async () => {
    const puller = await node()
    await dial(puller, owner)
    const bitswap = bitswapOf(owner)
    const receive = bitswap.peerWantLists.receiveMessage.bind(bitswap.peerWantLists)
    let wantHaves = 0
    let wantBlocks = 0
    bitswap.peerWantLists.receiveMessage = (peer, wire) => {
      if (peer.toString() === puller.peerId) {
        for (const entry of wire.wantlist?.entries ?? []) {
          if (entry.cancel) continue
          if (entry.wantType === 'WantHave') wantHaves++
          else wantBlocks++
        }
      }
      receive(peer, wire)
    }
    try {
      // two windows and a block: the root, then 17 leaves
      const content = randomBytes(2 * WINDOW + MiB)
      const cid = await heliaCapsuleStore(owner.helia).put(content)
      const bytes = await fetchAll(puller, cid)
      expect(bytes.equals(content)).toBe(true)
      // before: a want-have for every block, then its want-block (18 of each)
      expect(wantHaves).toBe(0)
      expect(wantBlocks).toBeGreaterThanOrEqual(18)
      expect(received(puller)).toBeLessThanOrEqual(1.25 * content.length)
    } finally {
      bitswap.peerWantLists.receiveMessage = receive
    }
  }, 60_000)

  it('a fetch started before the only peer is connected asks it want-block when it connects: no want-have at all', async () => {
    const puller = await node()
    const bitswap = bitswapOf(owner)
    const receive = bitswap.peerWantLists.receiveMessage.bind(bitswap.peerWantLists)
    let wantHaves = 0
    bitswap.peerWantLists.receiveMessage = (peer, wire) => {
      if (peer.toString() === puller.peerId) {
        for (const entry of wire.wantlist?.entries ?? []) {
          if (!entry.cancel && entry.wantType === 'WantHave') wantHaves++
        }
      }
      receive(peer, wire)
    }
    try {
      const content = randomBytes(WINDOW + MiB)
      const cid = await heliaCapsuleStore(owner.helia).put(content)
      // the root is asked before any peer is known (an executor dials the owner and fetches)
      const fetched = fetchAll(puller, cid)
      await new Promise((r) => setTimeout(r, 50))
      await dial(puller, owner)
      expect((await fetched).equals(content)).toBe(true)
      // before: the root went as want-have when the connection was reported (1)
      expect(wantHaves).toBe(0)
    } finally {
      bitswap.peerWantLists.receiveMessage = receive
    }
  }, 60_000)

  it('a block asked again while helia still stores it is handed over at once, not lost until the re-send', async () => {
    // Two fetch windows share a boundary leaf: the second asks while helia's storage still puts
    // the block the first got. Before, that want's want-block went out with the first want's
    // cancel in one batch, the cancel was lost and the owner, counting the block as sent, ignored
    // it: the second read waited for the want re-send (RESEND_MS; 10 s by default).
    const puller = await node()
    await dial(puller, owner)
    const block = randomBytes(MiB)
    const leaf = CID.createV1(RAW_CODE, await sha256.digest(block))
    await owner.helia.blockstore.put(leaf, block)
    const read = async (options: { signal?: AbortSignal; onProgress?: (e: Event) => void }) => {
      const chunks: Uint8Array[] = []
      for await (const c of puller.helia.blockstore.get(
        leaf,
        options as never,
      ) as never as AsyncIterable<Uint8Array>)
        chunks.push(c)
      return Buffer.concat(chunks)
    }
    let second: Promise<Buffer> | undefined
    const first = await read({
      onProgress: (e) => {
        if (e.type === 'bitswap:block' && second === undefined)
          second = read({ signal: AbortSignal.timeout(RESEND_MS - 500) })
      },
    })
    expect(first.equals(block)).toBe(true)
    expect(second).toBeDefined()
    expect((await second)?.equals(block)).toBe(true)
  }, 30_000)

  it('the one peer connected, asked want-block at once, still cannot pass a forged block', async () => {
    const [forger, puller] = await Promise.all([node(), node()])
    const content = randomBytes(2 * MiB)
    const cid = await heliaCapsuleStore(forger.helia).put(content)
    const blockWants = lie(forger, 'forged')
    await dial(puller, forger)
    // every want-block gets the forged block at once: the fetch ends by its own limit, no bytes
    const fetching = fetchAll(puller, cid, undefined, 4_000)
    await expect(fetching).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    expect(blockWants()).toBeGreaterThan(0)
    expect(await heliaCapsuleStore(puller.helia).has(cid)).toBe(false)
  }, 30_000)

  it('a peer that says "have", never sends the block and keeps the line busy with blocks nobody asked for is left after one resend time', async () => {
    // the liar wants something of the puller (so it is not a "source" and wins the want-blocks
    // over the owner), answers "have" and sends an unasked block every quarter of the resend
    // time: such traffic made it count as a busy holder, kept five resend times per want
    const [liar, puller] = await Promise.all([node(), node()])
    const blockWants = lie(liar, 'silent')
    await dial(puller, liar)
    await dial(puller, owner)
    const network = bitswapOf(liar).network
    const asking = message()
    const wanted = CID.createV1(RAW_CODE, await sha256.digest(randomBytes(32)))
    asking.wantlist.set('w', {
      cid: wanted.bytes,
      priority: 1,
      wantType: 'WantBlock',
      cancel: false,
      sendDontHave: false,
    })
    await network.sendMessage(puller.libp2p.peerId, asking)
    const junk = setInterval(() => {
      const reply = message()
      const data = randomBytes(64)
      reply.blocks.set('j', { data, prefix: Uint8Array.of(1, RAW_CODE, sha256.code, 32) })
      network.sendMessage(puller.libp2p.peerId, reply).catch(() => {})
    }, RESEND_MS / 4)
    try {
      const started = performance.now()
      const bytes = await fetchAll(puller, cid, undefined, 40_000)
      const took = performance.now() - started
      expect(bytes.equals(content)).toBe(true)
      expect(blockWants()).toBeGreaterThan(0)
      // one resend time on the liar, then the owner (five resend times before)
      expect(took).toBeLessThan(2.5 * RESEND_MS)
    } finally {
      clearInterval(junk)
    }
  }, 60_000)

  it('peers that said "have", failed and left are forgotten: the tables hold connected peers, not every peer id ever heard', async () => {
    // a node of its own, have-first installed by hand to read its tables
    const puller = await createDigicapNode({
      wantResendMs: RESEND_MS,
      pubsub: false,
      fetch: 'broadcast',
    })
    nodes.push(puller)
    const haveFirst = installHaveFirst(puller.helia, puller.libp2p, 500, { failureMemoryMs: 1_000 })
    try {
      const liars = await Promise.all(Array.from({ length: 8 }, () => node()))
      const asked = liars.map((liar) => lie(liar, 'silent'))
      for (const liar of liars) await dial(puller, liar)
      const fetching = fetchAll(puller, cid, undefined, 30_000)
      // every liar said "have" and some were asked the block and failed; then the owner comes
      while (haveFirst.trackedPeers().holders < liars.length) {
        await new Promise((r) => setTimeout(r, 20))
      }
      while (asked.every((blockWants) => blockWants() === 0)) {
        await new Promise((r) => setTimeout(r, 20))
      }
      await dial(puller, owner)
      expect((await fetching).equals(content)).toBe(true)
      expect(haveFirst.trackedPeers().failures).toBeGreaterThan(0)
      // the liars leave (new peer ids could come forever): nothing of them stays
      await Promise.all(liars.map((liar) => liar.stop()))
      const deadline = Date.now() + 5_000
      for (;;) {
        const tracked = haveFirst.trackedPeers()
        if ((tracked.failures === 0 && tracked.holders <= 1) || Date.now() > deadline) break
        await new Promise((r) => setTimeout(r, 50))
      }
      // the owner, still connected, may stay a holder
      expect(haveFirst.trackedPeers()).toMatchObject({ failures: 0, redials: 0 })
      expect(haveFirst.trackedPeers().holders).toBeLessThanOrEqual(1)
    } finally {
      haveFirst.stop()
    }
  }, 60_000)

  it('a connection to the only holder lost mid-fetch is dialled again and the fetch completes', async () => {
    const puller = await node()
    await dial(puller, owner)
    // a window and two blocks: the cut comes as the first window is read, the second is asked
    const content = randomBytes(WINDOW + 2 * MiB)
    const cid = await heliaCapsuleStore(owner.helia).put(content)
    let cut = false
    const bytes = await fetchAll(
      puller,
      cid,
      () => {
        if (cut) return
        cut = true
        // the owner's side drops it, as a reset or a monitor's abort would: nobody dials back
        for (const c of owner.libp2p.getConnections(puller.libp2p.peerId)) c.abort(new Error('cut'))
      },
      // the stall ends the fetch well before the test's own limit
      30_000,
    )
    expect(cut).toBe(true)
    expect(bytes.equals(content)).toBe(true)
  }, 60_000)
})
