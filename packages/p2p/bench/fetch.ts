/**
 * Capsule fetch between two helia nodes on loopback against one raw libp2p stream carrying the
 * same bytes between the same two nodes, in the same process and run (issue #17: helia ≥ 0.5×
 * the raw stream's throughput). Every block of the helia fetch is checked against its CID by
 * bitswap. Each round runs the raw stream and the fetch as `get` does it (optionally other window
 * layouts, and another checkout's fetch with `--base`), each on a fresh node B, in an order that
 * rotates between rounds, so that the shared machine's load and a warmer process hit all alike;
 * warm-up rounds (`--warmup`, default 1) run every variant once before anything is measured
 * (the first fetch of a process, and the raw stream in it, run cold). The medians of the
 * per-round ratios are printed (ADR 0041, ADR 0057).
 *
 * Run: `pnpm --filter @digicap/p2p bench` or
 * `node bench/fetch.ts [--size 100M] [--rounds 3] [--warmup 1] [--store memory|filestore]
 * [--fetcher fs|memory] [--layouts now,small] [--base <checkout>]`
 * (`filestore`: A serves the capsule as `pi-node serve` does, from file references; `fs`: B
 * fetches into an on-disk blockstore, as an executor node's data folder does; `--base`: another
 * checkout of this repository, e.g. the commit before a change, whose `@digicap/p2p` sources
 * serve and fetch the same capsule in the same process: before and after in one run).
 * Prints ratios; asserts nothing. Each line also gives the main thread's own CPU time (what the
 * event loop ran, without the time the box's other threads took from it: on a loaded 2-core box
 * its busy time is about twice its CPU time) and V8's mark-compacts in the span (ADR 0099).
 */
import { randomFillSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  type EventLoopUtilization,
  PerformanceObserver,
  constants as perfConstants,
  performance,
} from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import { WANT_RESENT_EVENT } from '../src/fetch/want-resend.ts'
import type { WindowedCatOptions } from '../src/fetch/windowed-cat.ts'
import type { DigicapNode } from '../src/index.ts'

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
const warmups = Number(opt('--warmup') ?? 1)
const storeKind = opt('--store') ?? 'filestore'
// B's blockstore: `fs` is what an executor node fetches into (its data folder's blockstore)
const fetcherKind = opt('--fetcher') ?? 'fs'
// `--layouts now` runs only that layout (a profile of one fetch path)
const layouts = (opt('--layouts') ?? 'now').split(',')
const baseDir = opt('--base')
if (fetcherKind !== 'fs' && fetcherKind !== 'memory') throw new Error('bad --fetcher')
if (storeKind !== 'filestore' && storeKind !== 'memory') throw new Error('bad --store')

/** The part of a libp2p v3 stream the baseline uses. */
interface RawStream extends AsyncIterable<{ byteLength: number }> {
  send(bytes: Uint8Array): boolean
  addEventListener(type: 'message', listener: () => void, options: { once: true }): void
  onDrain(): Promise<void>
  close(): Promise<void>
}

const PROTOCOL = '/digicap-bench/raw/1'

/** What the bench uses of a checkout's `@digicap/p2p` sources (this one's, or `--base`'s). */
interface Build {
  name: string
  createDigicapNode: typeof import('../src/index.ts').createDigicapNode
  heliaCapsuleStore: typeof import('../src/index.ts').heliaCapsuleStore
  parseCid: typeof import('../src/index.ts').parseCid
  windowedCat: typeof import('../src/fetch/windowed-cat.ts').windowedCat
  unixfsReader: typeof import('../src/read/unixfs-reader.ts').unixfsReader
  openFsCapsuleImporter: typeof import('../src/import.ts').openFsCapsuleImporter
}

/** A checkout's p2p sources, loaded as modules of their own (its own node_modules). */
async function loadBuild(name: string, checkout: string): Promise<Build> {
  const src = (file: string) => import(pathToFileURL(join(checkout, 'packages/p2p/src', file)).href)
  const [index, cat, reader, importer] = await Promise.all([
    src('index.ts'),
    src('fetch/windowed-cat.ts'),
    src('read/unixfs-reader.ts'),
    src('import.ts'),
  ])
  return {
    name,
    createDigicapNode: index.createDigicapNode,
    heliaCapsuleStore: index.heliaCapsuleStore,
    parseCid: index.parseCid,
    windowedCat: cat.windowedCat,
    unixfsReader: reader.unixfsReader,
    openFsCapsuleImporter: importer.openFsCapsuleImporter,
  }
}

/**
 * Wall ms, CPU ms of this process (both nodes, every thread: the event loop, libuv's pool, V8's
 * helpers, the kernel on their behalf) and the event loop's busy ms, over the same span.
 */
interface Timed {
  ms: number
  cpuMs: number
  loopMs: number
  /**
   * The most array-buffer memory (blocks, frames) this process had at once, above the start: an
   * upper bound on what the fetch held (garbage not yet collected counts too).
   */
  peakMiB: number
  /** V8's mark-compacts (full garbage collections) in the span: most are started by array-buffer memory. */
  markCompacts: number
  /** CPU ms of this thread (the event loop: both nodes' JavaScript), preemption not counted. */
  mainCpuMs: number
}
/** Mark-compacts in this process so far (V8's `gc` performance entries). */
let markCompacts = 0
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (
      (e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR
    )
      markCompacts++
  }
}).observe({ entryTypes: ['gc'] })
interface Mark {
  t0: number
  cpu0: NodeJS.CpuUsage
  loop0: EventLoopUtilization
  buffers0: number
  peak: { bytes: number }
  sampler: NodeJS.Timeout
  markCompacts0: number
  mainCpu0: NodeJS.CpuUsage
}
const mark = (): Mark => {
  const buffers0 = process.memoryUsage().arrayBuffers
  const peak = { bytes: buffers0 }
  // sampled: a fetch holding the capsule would show as its size here
  const sampler = setInterval(() => {
    peak.bytes = Math.max(peak.bytes, process.memoryUsage().arrayBuffers)
  }, 50)
  return {
    t0: performance.now(),
    cpu0: process.cpuUsage(),
    loop0: performance.eventLoopUtilization(),
    buffers0,
    peak,
    sampler,
    markCompacts0: markCompacts,
    mainCpu0: process.threadCpuUsage(),
  }
}
function timed({ t0, cpu0, loop0, buffers0, peak, sampler, markCompacts0, mainCpu0 }: Mark): Timed {
  clearInterval(sampler)
  const cpu = process.cpuUsage(cpu0)
  return {
    ms: performance.now() - t0,
    cpuMs: (cpu.user + cpu.system) / 1000,
    loopMs: performance.eventLoopUtilization(loop0).active,
    peakMiB: (peak.bytes - buffers0) / MiB,
    markCompacts: markCompacts - markCompacts0,
    mainCpuMs: ((c) => (c.user + c.system) / 1000)(process.threadCpuUsage(mainCpu0)),
  }
}
/** Monotonic µs (the clock of a --cpu-prof profile's samples), to cut a profile to one fetch. */
const micros = () => process.hrtime.bigint() / 1000n

/** ms for B to receive `bytes` over one raw stream from A (1 MiB writes, back-pressure honoured). */
async function rawStream(a: DigicapNode, b: DigicapNode, bytes: Uint8Array): Promise<Timed> {
  const m = mark()
  const h0 = micros()
  const stream = (await b.libp2p.dialProtocol(a.libp2p.peerId, PROTOCOL)) as unknown as RawStream
  // A sends once B asks, with B's reader running: bytes that arrive before anybody reads pile up
  // in the stream (yamux grants window as frames arrive) until its 4 MiB read limit aborts it
  stream.send(new Uint8Array(1))
  let n = 0
  for await (const c of stream) n += c.byteLength
  if (n !== bytes.byteLength) throw new Error(`raw stream carried ${n} bytes`)
  process.stderr.write(`  raw from ${h0} to ${micros()} µs\n`)
  return timed(m)
}

/**
 * The fetch as `heliaCapsuleStore.get` does it (`windowedCat` through the store's reader, every
 * block checked against its CID), with a window layout: `now` is the default (`get`'s own);
 * `small` is windows of 2 blocks, 7 ahead (the same 16-block bound).
 */
const LAYOUTS = {
  now: {},
  small: { windowBytes: 2 * MiB, windowsAhead: 7 },
} satisfies Record<string, WindowedCatOptions>
type Layout = keyof typeof LAYOUTS
for (const l of layouts) if (!(l in LAYOUTS)) throw new Error(`bad --layouts: ${l}`)

async function heliaFetch(
  build: Build,
  b: DigicapNode,
  label: string,
  options: WindowedCatOptions,
): Promise<Timed> {
  const m = mark()
  const h0 = micros()
  let n = 0
  let resent = 0
  const reader = build.unixfsReader(b.helia.blockstore)
  for await (const c of build.windowedCat(reader as never, build.parseCid(cid), {
    ...options,
    signal: AbortSignal.timeout(900_000),
    onProgress: (event) => {
      if (event.type === WANT_RESENT_EVENT) resent++
    },
  }))
    n += c.byteLength
  if (n !== size) throw new Error(`helia fetched ${n} bytes`)
  // a lost block message shows as wants sent again
  process.stderr.write(`  ${label} from ${h0} to ${micros()} µs, ${resent} wants sent again\n`)
  return timed(m)
}

/** A fresh node B of `build` (empty blockstore, new connection to `a`) for `run`. */
let bs = 0
async function withB<T>(
  build: Build,
  a: DigicapNode,
  run: (b: DigicapNode) => Promise<T>,
): Promise<T> {
  const bDir = join(dir, `b${bs++}`)
  const b = await build.createDigicapNode(fetcherKind === 'fs' ? { dataDir: bDir } : {})
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

const here = fileURLToPath(new URL('.', import.meta.url))
const now = await loadBuild('now', resolve(here, '../../..'))
const base = baseDir === undefined ? undefined : await loadBuild('base', resolve(baseDir))

/** Node A of `build`, serving the capsule (every build's A serves the same bytes). */
async function serving(build: Build): Promise<{ a: DigicapNode; cid: string }> {
  if (storeKind === 'filestore') {
    // each build imports into its own folder: the same file's leaves as references
    const aDir = join(dir, `a-${build.name}`)
    const importer = await build.openFsCapsuleImporter(aDir, { referenceFiles: true })
    const cid = await importer.put({ path: file })
    await importer.close()
    return { a: await build.createDigicapNode({ dataDir: aDir, datastore: 'memory' }), cid }
  }
  const a = await build.createDigicapNode()
  return { a, cid: await build.heliaCapsuleStore(a.helia).put(bytes) }
}

const ours = await serving(now)
const cid = ours.cid
const theirs = base === undefined ? undefined : await serving(base)
if (theirs !== undefined && theirs.cid !== cid) throw new Error('--base made another CID')
await ours.a.libp2p.handle(PROTOCOL, async (stream: RawStream) => {
  await new Promise<void>((asked) => stream.addEventListener('message', asked, { once: true }))
  for (let at = 0; at < size; at += MiB) {
    if (!stream.send(bytes.subarray(at, Math.min(size, at + MiB)))) await stream.onDrain()
  }
  await stream.close()
})

/** What one round measures, by name: the raw stream, each layout of this build, `base`. */
const variants: { name: string; run: () => Promise<Timed> }[] = [
  { name: 'raw', run: () => withB(now, ours.a, (b) => rawStream(ours.a, b, bytes)) },
  ...(layouts as Layout[]).map((layout) => ({
    name: layout,
    run: () => withB(now, ours.a, (b) => heliaFetch(now, b, `helia ${layout}`, LAYOUTS[layout])),
  })),
  ...(base === undefined || theirs === undefined
    ? []
    : [
        {
          name: 'base',
          run: () => withB(base, theirs.a, (b) => heliaFetch(base, b, 'helia base', {})),
        },
      ]),
]

const rows: Record<string, Timed>[] = []
try {
  for (let r = -warmups; r < rounds; r++) {
    // rotate the order, so that no variant always runs first (after the previous round's last)
    const k = ((r % variants.length) + variants.length) % variants.length
    const order = [...variants.slice(k), ...variants.slice(0, k)]
    const got: Record<string, Timed> = {}
    for (const v of order) got[v.name] = await v.run()
    const raw = got.raw as Timed
    const parts = order
      .filter((v) => v.name !== 'raw')
      .map((v) => {
        const t = got[v.name] as Timed
        return `${v.name} ${t.ms.toFixed(0)} ms (cpu ${t.cpuMs.toFixed(0)}, main ${t.mainCpuMs.toFixed(0)}, loop ${t.loopMs.toFixed(0)}, ${t.markCompacts} mark-compacts, buffers +${t.peakMiB.toFixed(0)} MiB) ${(raw.ms / t.ms).toFixed(2)}×`
      })
    process.stderr.write(
      `  ${r < 0 ? 'warm-up' : `round ${r + 1}`} (${order.map((v) => v.name).join(', ')}): raw ${raw.ms.toFixed(0)} ms (cpu ${raw.cpuMs.toFixed(0)}, main ${raw.mainCpuMs.toFixed(0)}, loop ${raw.loopMs.toFixed(0)}, ${raw.markCompacts} mark-compacts), ${parts.join(', ')} (load ${loadavg()[0]?.toFixed(1)})\n`,
    )
    if (r >= 0) rows.push(got)
  }
} finally {
  await ours.a.stop()
  await theirs?.a.stop()
  rmSync(dir, { recursive: true, force: true })
}
const mbs = (ms: number) => (size / 1e6 / (ms / 1000)).toFixed(0)
const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y)
  const m = Math.floor(s.length / 2)
  return (s.length % 2 === 1 ? s[m] : ((s[m - 1] as number) + (s[m] as number)) / 2) as number
}
const of = (row: Record<string, Timed>, name: string) => row[name] as Timed
const raw = median(rows.map((r) => of(r, 'raw').ms))
console.log(
  `p2p fetch bench: ${size / MiB} MiB, A's store ${storeKind}, B's ${fetcherKind}, ${rounds} rounds after ${warmups} warm-up, node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)
console.log(`  raw libp2p stream         median ${raw.toFixed(0)} ms  ${mbs(raw)} MB/s`)
const titles: Record<string, string> = {
  now: 'as get does it',
  small: '2 × 7 windows',
  base: `--base ${baseDir}`,
}
for (const v of variants.filter((v) => v.name !== 'raw')) {
  const ms = median(rows.map((r) => of(r, v.name).ms))
  const ratios = rows.map((r) => of(r, 'raw').ms / of(r, v.name).ms)
  const cpu = median(rows.map((r) => of(r, v.name).cpuMs / of(r, 'raw').cpuMs))
  const loop = median(rows.map((r) => of(r, v.name).loopMs / of(r, 'raw').loopMs))
  const main = median(rows.map((r) => of(r, v.name).mainCpuMs / of(r, 'raw').mainCpuMs))
  const compacts = median(rows.map((r) => of(r, v.name).markCompacts))
  const peak = Math.max(...rows.map((r) => of(r, v.name).peakMiB))
  console.log(
    `  helia, ${(titles[v.name] ?? v.name).padEnd(20)} median ${ms.toFixed(0)} ms  ${mbs(ms)} MB/s  ${median(ratios).toFixed(2)}× the raw throughput (rounds ${ratios.map((x) => x.toFixed(2)).join(' ')}; goal ≥ 0.5×), cpu ${cpu.toFixed(2)}× and event loop ${loop.toFixed(2)}× the raw stream's, main thread's CPU ${main.toFixed(2)}×, ${compacts} mark-compacts (raw ${median(rows.map((r) => of(r, 'raw').markCompacts))}), array buffers at most +${peak.toFixed(0)} MiB (garbage included)`,
  )
}
