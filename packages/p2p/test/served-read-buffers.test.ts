/**
 * A node serving blocks from file references reads them into buffers it reuses, each given back
 * only once its block went through noise (ADR 0099). Real nodes on loopback, a real capsule file.
 * Before, every served block was read into a fresh array (a 1 GiB fetch: 1 GiB of array memory
 * on the serving side alone, ~15 more mark-compacts).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Connection, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sentThroughNoise } from '../src/fetch/block-send/install.ts'
import {
  readBuffer,
  readForServing,
  recycleServedBlock,
  servedReadBufferCounts,
} from '../src/filestore/served-read-buffers.ts'
import { openFsCapsuleImporter } from '../src/import.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { connectedPair, stopNodes } from './connected-pair.ts'

const MiB = 1_048_576
const SINK = '/digicap-test/sink/1'

/** A node serving `bytes` from a data folder of file references, and a fresh node B dialling it. */
async function servingPair(dir: string, bytes: Uint8Array) {
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'capsule.bin')
  await writeFile(file, bytes)
  const dataDir = join(dir, 'a')
  const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
  const cid = await importer.put({ path: file })
  await importer.close()
  const a = await createDigicapNode({ dataDir, datastore: 'memory' })
  const b = await createDigicapNode()
  await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
  return { a, b, cid }
}

async function fetchAll(b: DigicapNode, cid: string) {
  const parts: Uint8Array[] = []
  let resent = 0
  for await (const chunk of heliaCapsuleStore(b.helia).get(cid, {
    onNetwork: (n) => {
      resent = n.wantsResent
    },
  }))
    parts.push(chunk)
  return { bytes: Buffer.concat(parts), resent }
}

const counts = () => ({ ...servedReadBufferCounts })

describe('served read buffers', () => {
  let dir: string
  let nodes: DigicapNode[] = []
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-served-buffers-'))
  })
  afterAll(async () => {
    await stopNodes(...nodes)
    await rm(dir, { recursive: true, force: true })
  })

  it('a 24-block fetch from file references is read into a few buffers, every byte right', async () => {
    const content = randomBytes(24 * MiB)
    const { a, b, cid } = await servingPair(join(dir, 'fast'), content)
    nodes.push(a, b)
    const before = counts()
    const got = await fetchAll(b, cid)
    expect(got.bytes.equals(content)).toBe(true)
    expect(got.resent).toBe(0)
    const fresh = servedReadBufferCounts.fresh - before.fresh
    const reused = servedReadBufferCounts.reused - before.reused
    // before: 24 fresh arrays of 1 MiB, none reused
    expect(fresh + reused).toBe(24)
    expect(fresh).toBeLessThanOrEqual(8)
    await stopNodes(a, b)
    nodes = []
  }, 60_000)

  it('bytes waiting unencrypted in the connection (its socket full) hold the buffers back until noise took them', async () => {
    // B (which dialled) sends, A reads
    const [a, b] = await connectedPair()
    nodes.push(a, b)
    await a.libp2p.handle(SINK, async (stream: Stream) => {
      for await (const _ of stream as unknown as AsyncIterable<unknown>) {
        // read and dropped
      }
    })
    const connection = b.libp2p.getConnections(a.libp2p.peerId)[0] as Connection
    const socket = (connection as unknown as { maConn: { socket: Socket } }).maConn.socket
    const stream = (await b.libp2p.dialProtocol(a.libp2p.peerId, SINK)) as unknown as Stream & {
      writeBufferLength: number
    }
    const second = (await b.libp2p.dialProtocol(a.libp2p.peerId, SINK)) as unknown as Stream & {
      writeBufferLength: number
    }
    // its protocol negotiated (an empty stream is opened lazily by some muxers): one byte through
    second.send(new Uint8Array(1))
    await new Promise((r) => setTimeout(r, 50))
    expect(sentThroughNoise(stream, connection)).toBe(true)
    // fault injection: B's socket takes nothing (corked) until the socket's own buffer is full;
    // what yamux hands the connection next waits, unencrypted, in the encrypted layer
    socket.cork()
    let sent = 0
    while (socket.writableLength < socket.writableHighWaterMark) {
      stream.send(randomBytes(16 * 1024))
      sent += 16 * 1024
      if (sent > 200 * 1024) break
    }
    // the muxer told every stream to wait: what they are given stays in their own buffers
    second.send(randomBytes(1024))
    expect(second.writeBufferLength).toBe(1024)
    expect(sentThroughNoise(second, connection)).toBe(false)
    // the stream that filled the socket: all it was given is encrypted (the socket holds it)
    expect(sentThroughNoise(stream, connection)).toBe(true)
    // the muxer's own frames (a ping here) go to the encrypted layer, which waits: a stream with
    // nothing of its own waiting is still not through noise
    const encrypted = (
      connection as unknown as { muxer: { maConn: { writeBufferLength: number } } }
    ).muxer.maConn
    const muxer = (connection as unknown as { muxer: { ping(): Promise<number> } }).muxer
    const pinged = muxer.ping().catch(() => 0)
    expect(encrypted.writeBufferLength).toBeGreaterThan(0)
    expect(sentThroughNoise({ writeBufferLength: 0 }, connection)).toBe(false)
    socket.uncork()
    await pinged
    const deadline = Date.now() + 5_000
    while (!sentThroughNoise(stream, connection) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5))
    }
    expect(sentThroughNoise(stream, connection)).toBe(true)
    expect(sentThroughNoise(second, connection)).toBe(true)
    expect(sentThroughNoise({ writeBufferLength: 0 }, connection)).toBe(true)
    await stream.close()
    await second.close()
    await stopNodes(a, b)
    nodes = []
  }, 30_000)

  it('a fetcher that reads in bursts gets every block right, none asked again', async () => {
    const content = randomBytes(24 * MiB)
    const { a, b, cid } = await servingPair(join(dir, 'slow'), content)
    nodes.push(a, b)
    // B's socket stops reading for 20 ms out of every 40
    const socket = (
      b.libp2p.getConnections(a.libp2p.peerId)[0] as unknown as { maConn: { socket: Socket } }
    ).maConn.socket
    let paused = false
    const pauses = setInterval(() => {
      if (paused) socket.resume()
      else socket.pause()
      paused = !paused
    }, 20)
    try {
      const got = await fetchAll(b, cid)
      expect(got.resent).toBe(0)
      expect(got.bytes.equals(content)).toBe(true)
    } finally {
      clearInterval(pauses)
      socket.resume()
    }
    await stopNodes(a, b)
    nodes = []
  }, 90_000)

  it("a local read of a referenced block is the reader's own array, never reused by serving", async () => {
    const content = randomBytes(8 * MiB)
    const { a, b, cid } = await servingPair(join(dir, 'local'), content)
    nodes.push(a, b)
    // A reads the capsule itself and keeps what it read, then serves it to B
    const own = (await fetchAll(a, cid)).bytes
    const kept: Uint8Array[] = []
    for await (const chunk of heliaCapsuleStore(a.helia).get(cid)) kept.push(chunk)
    const before = counts()
    expect((await fetchAll(b, cid)).bytes.equals(content)).toBe(true)
    expect(servedReadBufferCounts.reused - before.reused).toBeGreaterThan(0)
    expect(own.equals(content)).toBe(true)
    expect(Buffer.concat(kept).equals(content)).toBe(true)
    await stopNodes(a, b)
    nodes = []
  }, 60_000)

  it('only buffers handed out for serving, whole and once, are taken back', async () => {
    const outside = readBuffer(4096)
    const inside = await readForServing(async () => readBuffer(4096))
    const before = counts()
    recycleServedBlock(outside)
    recycleServedBlock(new Uint8Array(4096))
    recycleServedBlock(inside.subarray(0, 100))
    expect(servedReadBufferCounts.recycled).toBe(before.recycled)
    recycleServedBlock(inside)
    recycleServedBlock(inside)
    expect(servedReadBufferCounts.recycled).toBe(before.recycled + 1)
    // reused inside a served read only
    expect(readBuffer(4096)).not.toBe(inside)
    expect(await readForServing(async () => readBuffer(4096))).toBe(inside)
  })
})
