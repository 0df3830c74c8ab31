/**
 * Capsule fetch between two helia nodes on loopback against one raw libp2p stream carrying the
 * same bytes between the same two nodes, in the same process and run (issue #17: helia ≥ 0.5×
 * the raw stream's throughput). Every block of the helia fetch is checked against its CID by
 * bitswap. Each round runs the raw stream, the fetch as `get` does it (one window of 8 blocks
 * read while the next is fetched) and windows of 2 blocks with 7 ahead (the same 16-block
 * bound), each on a fresh node B, so that the shared machine's load hits all
 * alike; the medians of the per-round ratios are
 * printed (ADR 0041).
 *
 * Run: `pnpm --filter @digicap/p2p bench` or
 * `node bench/fetch.ts [--size 100M] [--rounds 3] [--store memory|filestore] [--fetcher fs|memory]`
 * (`filestore`: A serves the capsule as `pi-node serve` does, from file references; `fs`: B
 * fetches into an on-disk blockstore, as an executor node's data folder does).
 * Prints ratios; asserts nothing.
 */
import { randomFillSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { UnixFS } from '@helia/unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { WANT_RESENT_EVENT } from '../src/fetch/want-resend.ts'
import { type WindowedCatOptions, windowedCat } from '../src/fetch/windowed-cat.ts'
import { openFsCapsuleImporter } from '../src/import.ts'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore, parseCid } from '../src/index.ts'
import { unixfsReader } from '../src/read/unixfs-reader.ts'

const MiB = 1024 * 1024
const argv = process.argv.slice(2)
const opt = (name: string) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const size = (() => {
  const m = /^(\d+)([KMG]?)$/i.exec(opt('--size') ?? '100M')
  if (!m) throw new Error('bad --size')
  return (
    Number(m[1]) *
    ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB }[(m[2] as string).toUpperCase()] as number)
  )
})()
const rounds = Number(opt('--rounds') ?? 3)
const storeKind = opt('--store') ?? 'filestore'
// B's blockstore: `fs` is what an executor node fetches into (its data folder's blockstore)
const fetcherKind = opt('--fetcher') ?? 'fs'
// `--layouts now` runs only that layout (a profile of one fetch path)
const layouts = (opt('--layouts') ?? 'now,small').split(',')
if (fetcherKind !== 'fs' && fetcherKind !== 'memory') throw new Error('bad --fetcher')

/** The part of a libp2p v3 stream the baseline uses. */
interface RawStream extends AsyncIterable<{ byteLength: number }> {
  send(bytes: Uint8Array): boolean
  addEventListener(type: 'message', listener: () => void, options: { once: true }): void
  onDrain(): Promise<void>
  close(): Promise<void>
}

const PROTOCOL = '/digicap-bench/raw/1'

/** Wall ms, and CPU ms of this process (both nodes, every thread) over the same span. */
interface Timed {
  ms: number
  cpuMs: number
}
function timed(t0: number, cpu0: NodeJS.CpuUsage): Timed {
  const cpu = process.cpuUsage(cpu0)
  return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 }
}

/** ms for B to receive `bytes` over one raw stream from A (1 MiB writes, back-pressure honoured). */
async function rawStream(a: DigicapNode, b: DigicapNode, bytes: Uint8Array): Promise<Timed> {
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const stream = (await b.libp2p.dialProtocol(a.libp2p.peerId, PROTOCOL)) as unknown as RawStream
  // A sends once B asks, with B's reader running: bytes that arrive before anybody reads pile up
  // in the stream (yamux grants window as frames arrive) until its 4 MiB read limit aborts it
  stream.send(new Uint8Array(1))
  let n = 0
  for await (const c of stream) n += c.byteLength
  if (n !== bytes.byteLength) throw new Error(`raw stream carried ${n} bytes`)
  return timed(t0, cpu0)
}

/**
 * The fetch as `heliaCapsuleStore.get` does it (`windowedCat` through the store's reader, every
 * block checked against its CID), with a window layout: `now` is the default (one window of 8
 * blocks ahead); `small` is windows of 2 blocks, 7 ahead. Both hold at most 16 blocks.
 */
const LAYOUTS = {
  now: {},
  small: { windowBytes: 2 * MiB, windowsAhead: 7 },
} satisfies Record<string, WindowedCatOptions>
type Layout = keyof typeof LAYOUTS

async function heliaFetch(b: DigicapNode, cid: string, layout: Layout): Promise<Timed> {
  const t0 = performance.now()
  const h0 = process.hrtime.bigint() / 1000n
  const cpu0 = process.cpuUsage()
  let n = 0
  let resent = 0
  for await (const c of windowedCat(unixfsReader(b.helia.blockstore) as UnixFS, parseCid(cid), {
    ...LAYOUTS[layout],
    signal: AbortSignal.timeout(900_000),
    onProgress: (event) => {
      if (event.type === WANT_RESENT_EVENT) resent++
    },
  }))
    n += c.byteLength
  if (n !== size) throw new Error(`helia fetched ${n} bytes`)
  // monotonic µs marks (the clock of a --cpu-prof profile's samples), to cut a profile to the
  // fetch; a lost block message shows as wants sent again
  process.stderr.write(
    `  helia (${layout}) from ${h0} to ${process.hrtime.bigint() / 1000n} µs, ${resent} wants sent again\n`,
  )
  return timed(t0, cpu0)
}

/** A fresh node B (empty blockstore, new connection) for `run`. */
let bs = 0
async function withB<T>(run: (b: DigicapNode) => Promise<T>): Promise<T> {
  const bDir = join(dir, `b${bs++}`)
  const b = await createDigicapNode(fetcherKind === 'fs' ? { dataDir: bDir } : {})
  try {
    await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
    return await run(b)
  } finally {
    await b.stop()
    rmSync(bDir, { recursive: true, force: true })
  }
}

const dir = mkdtempSync(join(tmpdir(), 'digicap-p2p-fetch-bench-'))
const bytes = new Uint8Array(size)
for (let at = 0; at < size; at += 64 * MiB) randomFillSync(bytes, at, Math.min(64 * MiB, size - at))
const file = join(dir, 'capsule.bin')
writeFileSync(file, bytes)

let cid: string
let a: DigicapNode
if (storeKind === 'filestore') {
  const importer = await openFsCapsuleImporter(join(dir, 'a'), { referenceFiles: true })
  cid = await importer.put({ path: file })
  await importer.close()
  a = await createDigicapNode({ dataDir: join(dir, 'a'), datastore: 'memory' })
} else {
  a = await createDigicapNode()
  cid = await heliaCapsuleStore(a.helia).put(bytes)
}
await a.libp2p.handle(PROTOCOL, async (stream: RawStream) => {
  await new Promise<void>((asked) => stream.addEventListener('message', asked, { once: true }))
  for (let at = 0; at < size; at += MiB) {
    if (!stream.send(bytes.subarray(at, Math.min(size, at + MiB)))) await stream.onDrain()
  }
  await stream.close()
})

const rows: ({ raw: Timed } & Partial<Record<Layout, Timed>>)[] = []
try {
  for (let r = 0; r < rounds; r++) {
    const raw = await withB((b) => rawStream(a, b, bytes))
    // alternate which layout goes first, so that neither always meets the warmer process
    const all = Object.keys(LAYOUTS)
    const order = (r % 2 === 0 ? all : [...all].reverse()).filter((l) =>
      layouts.includes(l),
    ) as Layout[]
    const got: Partial<Record<Layout, Timed>> = {}
    for (const layout of order) got[layout] = await withB((b) => heliaFetch(b, cid, layout))
    rows.push({ raw, ...got })
    const parts = order.map((l) => {
      const t = got[l] as Timed
      return `helia ${l} ${t.ms.toFixed(0)} ms (cpu ${t.cpuMs.toFixed(0)}) ${(raw.ms / t.ms).toFixed(2)}×`
    })
    process.stderr.write(
      `  round ${r + 1}: raw ${raw.ms.toFixed(0)} ms (cpu ${raw.cpuMs.toFixed(0)}), ${parts.join(', ')} (load ${loadavg()[0]?.toFixed(1)})\n`,
    )
  }
} finally {
  await a.stop()
  rmSync(dir, { recursive: true, force: true })
}
const mbs = (ms: number) => (size / 1e6 / (ms / 1000)).toFixed(0)
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number
const raw = median(rows.map((r) => r.raw.ms))
console.log(
  `p2p fetch bench: ${size / MiB} MiB, A's store ${storeKind}, B's ${fetcherKind}, ${rounds} rounds, node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)
console.log(`  raw libp2p stream         median ${raw.toFixed(0)} ms  ${mbs(raw)} MB/s`)
for (const layout of (Object.keys(LAYOUTS) as Layout[]).filter((l) => layouts.includes(l))) {
  const of = (r: (typeof rows)[number]) => r[layout] as Timed
  const ms = median(rows.map((r) => of(r).ms))
  const ratios = rows.map((r) => r.raw.ms / of(r).ms)
  const cpu = median(rows.map((r) => of(r).cpuMs / r.raw.cpuMs))
  console.log(
    `  helia, ${(layout === 'now' ? 'as get does it' : '2 × 7 windows').padEnd(20)} median ${ms.toFixed(0)} ms  ${mbs(ms)} MB/s  ${median(ratios).toFixed(2)}× the raw throughput (rounds ${ratios.map((x) => x.toFixed(2)).join(' ')}; goal ≥ 0.5×), cpu ${cpu.toFixed(2)}× the raw stream's`,
  )
}
