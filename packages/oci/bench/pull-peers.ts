/**
 * Kraken's point, measured: N executors on loopback pull one image (random layers, as sealed
 * layers look), each through `pullImage` (bitswap, every blob digest-checked, written to a
 * layout), in four ways in the same run:
 *
 * - `http`: a plain node:http origin serving the layout's blobs, each executor downloading every
 *   blob to a file (no checks): the origin serves N × the image;
 * - `owner only`: fresh helia nodes, each connected to the owner alone;
 * - `mesh`: fresh nodes connected to the owner and to each other, pulling at once;
 * - `one seed`: fresh nodes connected to each other, only the first one to the owner, pulling
 *   at once (bitswap forwards a block to the peers that want it as it arrives).
 *
 * Each p2p round runs once per fetch mode of the executors' nodes (`FETCH='broadcast,have-first'`,
 * the default both): bitswap's own want-block to every peer against the have-first fetch
 * (ADR 0044), in the same run.
 *
 * Prints the wall time of each round (all N done), the bytes the owner (origin) served and their
 * ratio to the image, the bytes the executors served each other, and the excess (bytes
 * delivered beyond N × the image: duplicates). Bytes served by a node are the block bytes its
 * bitswap sent. No asserts: it prints.
 *
 *   [TOPOLOGIES='owner only,mesh,one seed'] [FETCH='broadcast,have-first'] \
 *     node bench/pull-peers.ts [MiB=200] [N list=1,4,8]
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  createLayout,
  type ImageLayout,
  pullImage,
  putImageBlobs,
  readImageDistribution,
  type Sha256Digest,
} from '../src/index.ts'

const MiB = 1024 * 1024
const mib = Number(process.argv[2] ?? 200)
const counts = (process.argv[3] ?? '1,4,8').split(',').map(Number)
/** The p2p rounds to run (`TOPOLOGIES='owner only,one seed'`); default all three. */
const topologies = (process.env.TOPOLOGIES ?? 'owner only,mesh,one seed').split(',')
/** The executors' fetch modes compared (`FETCH='have-first'`); default both. */
const modes = (process.env.FETCH ?? 'broadcast,have-first').split(',') as FetchMode[]
type FetchMode = 'broadcast' | 'have-first'
const LAYERS = 4
/** A blob fetch that takes longer than this fails its round. */
const STALL_MS = Number(process.env.STALL_MS ?? 300_000)
const work = await mkdtemp(join(tmpdir(), 'oci-pull-bench-'))

/** A layout of `LAYERS` random layers adding up to `mib` MiB, a config and a manifest. */
async function buildImage(layout: ImageLayout) {
  const layers: { mediaType: string; digest: Sha256Digest; size: number }[] = []
  for (let i = 0; i < LAYERS; i++) {
    const size = Math.floor((mib * MiB) / LAYERS)
    const blob = await layout.writeBlob(
      (function* () {
        for (let n = 0; n < size; n += MiB) yield randomBytes(Math.min(MiB, size - n))
      })(),
    )
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+encrypted', ...blob })
  }
  const config = await layout.writeBytes(
    new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux' })),
  )
  const manifest = await layout.writeBytes(
    new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers,
      }),
    ),
  )
  await layout.writeIndex({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest }],
  })
  const blobs = [manifest, config, ...layers]
  return { digest: manifest.digest, blobs, bytes: blobs.reduce((n, b) => n + b.size, 0) }
}

/**
 * The bytes a node's bitswap sent to peers (blocks in messages), summed over its per-peer
 * ledgers: helia's internals (`@helia/bitswap` 4), read here because nothing public counts them.
 */
function servedBytes(node: DigicapNode): (to?: Set<string>) => number {
  interface Ledgers {
    bitswap: { peerWantLists: { ledgerMap: Map<unknown, { bytesSent: number }> } }
  }
  const brokers = (node.helia as unknown as { blockBrokers: { name: string }[] }).blockBrokers
  const broker = brokers.find((b) => b.name === 'bitswap') as unknown as Ledgers | undefined
  if (!broker) throw new Error('no bitswap block broker')
  return (to) => {
    let sent = 0
    for (const [peer, ledger] of broker.bitswap.peerWantLists.ledgerMap) {
      if (!to || to.has(String(peer))) sent += ledger.bytesSent
    }
    return sent
  }
}

/**
 * Dials `to`, again after a pause when refused: every executor here dials from 127.0.0.1, and
 * libp2p refuses more than 5 inbound connections a second from one host (its flood guard), so
 * eight executors dialling the owner at once were reset (N = 8 failed before it started).
 */
async function dial(from: DigicapNode, to: DigicapNode) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await from.libp2p.dial(
        to.libp2p.getMultiaddrs()[0] as Parameters<typeof from.libp2p.dial>[0],
      )
    } catch (err) {
      if (attempt >= 10) throw err
      await new Promise((r) => setTimeout(r, 1_100))
    }
  }
}

interface Round {
  ms: number
  /** Bytes the owner (origin) served. */
  origin: number
  /** Bytes the executors served each other. */
  peers: number
}

async function httpRound(n: number, layout: ImageLayout, blobs: { digest: Sha256Digest }[]) {
  let origin = 0
  const server = createServer((req, res) => {
    const digest = (req.url ?? '').slice(1) as Sha256Digest
    const stream = createReadStream(layout.blobPath(digest))
    stream.on('data', (chunk) => {
      origin += chunk.length
    })
    stream.pipe(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  const dirs = await Promise.all(
    Array.from({ length: n }, (_, i) => mkdtemp(join(work, `http-${i}-`))),
  )
  const t0 = performance.now()
  await Promise.all(
    dirs.map(async (dir) => {
      for (const [i, blob] of blobs.entries()) {
        const response = await fetch(base + blob.digest)
        await pipeline(response.body as never, createWriteStream(join(dir, String(i))))
      }
    }),
  )
  const ms = performance.now() - t0
  server.close()
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
  return { ms, origin, peers: 0 }
}

async function p2pRound(
  n: number,
  owner: DigicapNode,
  ownerServed: (to?: Set<string>) => number,
  mapCid: string,
  manifestDigest: Sha256Digest,
  topology: 'owner only' | 'mesh' | 'one seed',
  fetch: FetchMode,
): Promise<Round> {
  const nodes = await Promise.all(
    Array.from({ length: n }, () => createDigicapNode({ fetch, pubsub: false })),
  )
  const served = nodes.map(servedBytes)
  try {
    for (const [i, node] of nodes.entries()) {
      if (topology !== 'one seed' || i === 0) await dial(node, owner)
      if (topology !== 'owner only') for (const other of nodes.slice(0, i)) await dial(node, other)
    }
    const t0 = performance.now()
    await Promise.all(
      nodes.map(async (node, i) => {
        const store = heliaCapsuleStore(node.helia)
        const distribution = await readImageDistribution(store, mapCid)
        const to = join(work, `pulled-${i}`)
        // a blob that stops arriving fails the round (named below) instead of hanging the bench
        await pullImage({ store, distribution, manifestDigest, to, timeoutMs: STALL_MS })
        await rm(to, { recursive: true, force: true })
      }),
    )
    const ms = performance.now() - t0
    return {
      ms,
      // this round's executors only (the owner's ledgers of earlier rounds may linger)
      origin: ownerServed(new Set(nodes.map((node) => node.peerId))),
      peers: served.reduce((sum, s) => sum + s(), 0),
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()))
  }
}

const owner = await createDigicapNode()
const ownerServed = servedBytes(owner)
try {
  const layout = await createLayout(join(work, 'image'))
  const image = await buildImage(layout)
  const { cid: mapCid } = await putImageBlobs(layout, heliaCapsuleStore(owner.helia))
  const size = (b: number) => `${(b / MiB).toFixed(0)} MiB`.padStart(9)
  console.log(
    `image ${size(image.bytes).trim()} in ${LAYERS} layers, loopback, load ${loadavg()[0]?.toFixed(1)}`,
  )
  console.log(
    'N  round                     wall ms  owner served  owner/image  peers served  excess  wall/http',
  )
  for (const n of counts) {
    const http = await httpRound(n, layout, image.blobs)
    const rounds: [string, Round][] = [['http', http]]
    for (const topology of ['owner only', 'mesh', 'one seed'] as const) {
      if (n === 1 && topology !== 'owner only') continue
      if (!topologies.includes(topology)) continue
      for (const fetch of modes) {
        const name = `${topology} (${fetch})`
        try {
          rounds.push([
            name,
            await p2pRound(n, owner, ownerServed, mapCid, image.digest, topology, fetch),
          ])
        } catch (err) {
          const e = err as { code?: string; message?: string }
          console.log(
            `${String(n).padEnd(2)} ${name.padEnd(23)} failed: ${e.code ?? ''} ${e.message}`,
          )
        }
      }
    }
    for (const [name, r] of rounds) {
      const excess = r.origin + r.peers - n * image.bytes
      console.log(
        `${String(n).padEnd(2)} ${name.padEnd(23)} ${r.ms.toFixed(0).padStart(9)}  ${size(r.origin)}   ` +
          `${(r.origin / image.bytes).toFixed(2).padStart(10)}     ${size(r.peers)} ${size(excess)}` +
          `  ${(r.ms / http.ms).toFixed(2).padStart(9)}  load ${loadavg()[0]?.toFixed(1)}`,
      )
    }
  }
} finally {
  await owner.stop()
  await rm(work, { recursive: true, force: true })
}
