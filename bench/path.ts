/**
 * The user's path, end to end, each stage against its baseline measured in the same run:
 *
 * | stage | what runs | baseline |
 * | seal | `pi-node seal` (real CLI process: policy deploy, seal, IPFS add, register; anvil) | `cat` copy + fsync of the same file on the same disk; library `commitAndSealFile` |
 * | add | the capsule import into an on-disk blockstore (`openFsCapsuleImporter`), blocks copied, and leaves kept as references to the capsule file (as `pi-node seal` adds) | `cat` copy |
 * | fetch | helia/bitswap between two nodes on loopback, every block checked against its CID | one raw libp2p stream between the same two nodes carrying the same bytes |
 * | open | library `openFile` of the capsule | `cat` copy |
 *
 * Run: `pnpm bench:path` (sizes 1M,100M,1G) or `node bench/path.ts --sizes 1M,100M [--dir <disk folder>]
 * [--stages seal,add,fetch,open,exec] [--rounds N] (the seal stage N times, interleaved with its `cat`: medians) [--node-flags '--cpu-prof --cpu-prof-dir=/tmp/prof']` (the flags go to
 * the `pi-node seal` process, e.g. to profile the real path) [--no-serve] (skip the rounds of the seal
 * handed to a running `pi-node serve`, ADR 0107) [--base <another built checkout>] (its
 * `pi-node seal` and library seal run right after this one's on the same file: before/after a change in one run).
 * Needs the packages built (`pnpm build`). Prints ratios; asserts nothing.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '../packages/contracts/dist/testing.js'
import { createDigicapNode, heliaCapsuleStore } from '../packages/p2p/dist/index.js'
import { executorRows, type StageRow, writeRandom } from './executor-stages.ts'
import { measureNode, measureShell } from './fs-peak.ts'

const argv = process.argv.slice(2)
const opt = (name: string) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const here = fileURLToPath(new URL('.', import.meta.url))
const PI_NODE_BIN = join(here, '../apps/pi-node/bin/pi-node.js')
const PI_NODE_FLAGS = (opt('--node-flags') ?? '').split(' ').filter(Boolean)
/** `node <the bin's shebang flags> <bin>`: as the installed command runs. */
const piNodeOf = (bin: string) => [
  ...((readFileSync(bin, 'utf8').split('\n')[0] as string).split(' node ')[1] ?? '')
    .split(' ')
    .filter(Boolean),
  bin,
]
const PI_NODE = piNodeOf(PI_NODE_BIN)
/**
 * `--base <checkout>`: another built checkout's `pi-node` (e.g. the commit before a change),
 * run on the same file, anvil and data folder right after this one's: an A/B in one run.
 */
const BASE_DIR = opt('--base')
const BASE_PI_NODE = BASE_DIR ? piNodeOf(join(BASE_DIR, 'apps/pi-node/bin/pi-node.js')) : undefined
const LIB = join(here, 'lib-op.ts')
const MiB = 1024 * 1024
const parseSize = (s: string) => {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim())
  if (!m) throw new Error(`bad size ${s}`)
  return (
    Number(m[1]) *
    ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB }[(m[2] as string).toUpperCase()] as number)
  )
}
// --rounds N: the seal stage's cat, pi-node seal and library seal N times each, interleaved (medians).
const ROUNDS = Math.max(1, Number(opt('--rounds') ?? 1))
/** A seal run: wall ms, peak RSS, and the whole process's CPU (every thread, start included). */
type Measured = { ms: number; rssMiB: number; cpuMs: number; sysMs?: number }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const sizes = (opt('--sizes') ?? '1M,100M,1G').split(',').map(parseSize)
const stages = new Set((opt('--stages') ?? 'seal,add,fetch,open,exec').split(','))
const dir = mkdtempSync(join(opt('--dir') ?? tmpdir(), 'digicap-path-bench-'))

const rows: StageRow[] = []
const fmtSize = (n: number) =>
  n >= 1024 * MiB ? `${n / 1024 / MiB} GiB` : `${(n / MiB).toFixed(n < MiB ? 3 : 0)} MiB`
const mbs = (bytes: number, ms: number) => (bytes / 1e6 / (ms / 1000)).toFixed(0)

async function lib(op: string, a: string, b: string, script = LIB) {
  const m = await measureNode([script, op, a, b])
  if (m.code !== 0) throw new Error(`lib ${op} failed: ${m.stderr}`)
  return { ...m, opMs: JSON.parse(m.stdout.trim().split('\n').at(-1) as string).ms as number }
}

/**
 * Removes a file and waits for the disk to be done with it, untimed. On an ext4 mounted with
 * `discard` (as here) the freed extents are trimmed at the next journal commit, up to 5 s
 * later, and the deletes of the rounds' 1–4 GiB files used to land inside the next timed copy
 * or seal; the `sync` also flushes what a previous step left dirty, so each timed step starts
 * from a clean disk.
 */
function removeSettled(path: string): void {
  rmSync(path, { force: true })
  spawnSync('sync', { stdio: 'ignore' })
}

/** `pi-node seal <plain> --policy maxRuns(3) --json` with the given binary; throws on failure. */
async function sealWithApp(
  app: string[],
  plain: string,
  env: NodeJS.ProcessEnv,
  flags: string[] = [],
) {
  const m = await measureNode(
    [...flags, ...app, 'seal', plain, '--policy', 'maxRuns(3)', '--json'],
    env,
  )
  if (m.code !== 0) throw new Error(`pi-node seal failed: ${m.stderr}`)
  return { ...m, result: JSON.parse(m.stdout) as { capsulePath: string; cid: string } }
}

/** `--no-serve`: skip the rounds of the seal handed to a running `pi-node serve`. */
const SERVE = !process.argv.includes('--no-serve')

/** A process's memory line from /proc (`VmRSS`, `VmHWM`), MiB. */
function procMiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`))
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024
}

/**
 * ROUNDS × (`cat` + fsync, `pi-node seal` handed to serve) with `pi-node serve` running on the
 * data folder (started here, stopped at the end): the CLI's wall time and RSS, serve's memory.
 */
async function handedRounds(plain: string, oneShotEnv: NodeJS.ProcessEnv) {
  // A data folder of its own: the one-shot rounds removed their capsules behind the first
  // folder's back, and a serve started on it would try to pin them.
  const env = { ...oneShotEnv, DIGICAP_DATA_DIR: join(dir, `pi-serve-${size0(plain)}`) }
  const init = await measureNode(
    [...PI_NODE, 'init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer', '--json'],
    env,
  )
  if (init.code !== 0) throw new Error(`pi-node init failed: ${init.stderr}`)
  const serve = spawn(process.execPath, [...PI_NODE, 'serve', '--json'], {
    env: { ...env, DIGICAP_LISTEN: '/ip4/127.0.0.1/tcp/0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  const keep = (c: Buffer) => {
    log += c
  }
  serve.stderr.on('data', keep)
  serve.stdout.on('data', keep)
  const token = join(env.DIGICAP_DATA_DIR as string, 'seal.token')
  for (let t = 0; !existsSync(token); t++) {
    if (t > 1200 || serve.exitCode !== null)
      throw new Error(`pi-node serve did not start (exit ${serve.exitCode}):\n${log}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const out = {
    cat: [] as number[],
    runs: [] as Measured[],
    firstMs: 0,
    serveStartMiB: 0,
    servePeakMiB: 0,
  }
  try {
    out.serveStartMiB = procMiB(serve.pid as number, 'VmRSS')
    // The daemon's first seal compiles the policy and brings up its lanes and importer: shown
    // apart (a daemon runs for days; the rounds are its steady state).
    const tiny = join(dir, 'tiny-handed.bin')
    writeRandom(tiny, 3)
    out.firstMs = (await sealWithApp(PI_NODE, tiny, env)).ms
    for (let r = 0; r < ROUNDS; r++) {
      step(size0(plain), `cat (handed rounds, ${r + 1} of ${ROUNDS})`)
      out.cat.push((await catCopy(plain, join(dir, 'copy.bin'))).ms)
      step(size0(plain), 'pi-node seal, handed to serve')
      const app = await sealWithApp(PI_NODE, plain, env)
      removeSettled(app.result.capsulePath)
      out.runs.push({ ms: app.ms, rssMiB: app.rssMiB, cpuMs: app.cpuMs })
    }
    if (!log.includes('seal handed over')) throw new Error(`serve sealed nothing:\n${log}`)
    out.servePeakMiB = procMiB(serve.pid as number, 'VmHWM')
  } finally {
    serve.kill('SIGTERM')
    await new Promise((r) => serve.once('exit', r))
  }
  return out
}
const size0 = (file: string) => statSync(file).size

async function catCopy(from: string, to: string) {
  const m = await measureShell(`cat '${from}' > '${to}' && sync '${to}'`)
  removeSettled(to)
  return m
}

/** The part of a libp2p v3 stream the baseline uses. */
interface RawStream extends AsyncIterable<{ byteLength: number }> {
  send(bytes: Uint8Array): boolean
  onDrain(): Promise<void>
  close(): Promise<void>
}

/** One raw libp2p stream from A to B carrying the file's bytes; ms on B's side. */
async function rawStream(
  a: Awaited<ReturnType<typeof createDigicapNode>>,
  b: typeof a,
  file: string,
) {
  const proto = '/digicap-bench/raw/1'
  await a.libp2p.handle(proto, async (stream: RawStream) => {
    for await (const chunk of createReadStream(file, { highWaterMark: MiB })) {
      if (!stream.send(chunk)) await stream.onDrain()
    }
    await stream.close()
  })
  const t0 = performance.now()
  const stream = (await b.libp2p.dialProtocol(a.libp2p.peerId, proto)) as unknown as RawStream
  let n = 0
  for await (const c of stream) n += c.byteLength
  const ms = performance.now() - t0
  await a.libp2p.unhandle(proto)
  return { ms, bytes: n }
}

const anvil = await startAnvil()
try {
  const env = { ...process.env, DIGICAP_DATA_DIR: join(dir, 'pi'), DIGICAP_RPC_URL: anvil.rpcUrl }
  const init = await measureNode(
    [...PI_NODE, 'init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer', '--json'],
    env,
  )
  if (init.code !== 0) throw new Error(`pi-node init failed: ${init.stderr}`)
  // The first seal compiles the policy (solc, in a child) and caches it: shown apart.
  writeRandom(join(dir, 'tiny.bin'), 3)
  const first = await sealWithApp(PI_NODE, join(dir, 'tiny.bin'), env)
  console.log(
    `digicap path bench: node ${process.version}, files in ${dir}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n` +
      `first pi-node seal (3 B, compiles the policy in a child process): ${first.ms.toFixed(0)} ms, pi-node ${first.rssMiB.toFixed(0)} MiB, with solc child ${first.treeMiB.toFixed(0)} MiB`,
  )
  for (const size of sizes) {
    const plain = join(dir, `plain-${size}.bin`)
    writeRandom(plain, size)
    spawnSync('sync', { stdio: 'ignore' })
    // seal: `cat`, the app, the library (and --base's), interleaved round by round so a load
    // swing hits them alike; each row is the median over the rounds.
    const runs = { cat: [] as number[], app: [] as Measured[], lib: [] as Measured[] }
    const baseRuns = { app: [] as Measured[], lib: [] as Measured[] }
    const capsule = join(dir, `capsule-${size}.bin`)
    for (let r = 0; r < ROUNDS; r++) {
      step(size, `cat${ROUNDS > 1 ? ` (round ${r + 1} of ${ROUNDS})` : ''}`)
      runs.cat.push((await catCopy(plain, join(dir, 'copy.bin'))).ms)
      step(size, 'pi-node seal')
      const app = await sealWithApp(PI_NODE, plain, env, PI_NODE_FLAGS)
      // Every timed step starts with the same files on the disk (the plaintext only): each
      // output is removed as soon as its step ends. A capsule left in place made the next step
      // write beside it, and on this VM's balloon the kernel's part follows the page cache a
      // step reuses (bench/README, "Parked lane workers").
      removeSettled(app.result.capsulePath)
      runs.app.push({ ms: app.ms, rssMiB: app.rssMiB, cpuMs: app.cpuMs, sysMs: app.sysMs })
      if (BASE_PI_NODE) {
        step(size, 'pi-node seal (base)')
        const base = await sealWithApp(BASE_PI_NODE, plain, env, PI_NODE_FLAGS)
        removeSettled(base.result.capsulePath)
        baseRuns.app.push({
          ms: base.ms,
          rssMiB: base.rssMiB,
          cpuMs: base.cpuMs,
          sysMs: base.sysMs,
        })
      }
      step(size, 'library seal')
      const libSeal = await lib('seal', plain, capsule)
      removeSettled(capsule)
      runs.lib.push({
        ms: libSeal.opMs,
        rssMiB: libSeal.rssMiB,
        cpuMs: libSeal.cpuMs,
        sysMs: libSeal.sysMs,
      })
      if (BASE_DIR && stages.has('seal')) {
        step(size, 'library seal (base)')
        const baseLib = await lib(
          'seal',
          plain,
          `${capsule}.base`,
          join(BASE_DIR, 'bench/lib-op.ts'),
        )
        removeSettled(`${capsule}.base`)
        baseRuns.lib.push({ ms: baseLib.opMs, rssMiB: baseLib.rssMiB, cpuMs: baseLib.cpuMs })
      }
    }
    // The same seal handed to a running `pi-node serve` (ADR 0107): its own rounds, each with
    // its own `cat`, while serve runs (the one-shot rounds above ran without it, as before).
    const handed = SERVE && stages.has('seal') ? await handedRounds(plain, env) : undefined
    const catMs = median(runs.cat)
    const sealRow = (stage: string, m: Measured[]): StageRow => ({
      size,
      stage,
      ms: median(m.map((x) => x.ms)),
      rssMiB: Math.max(...m.map((x) => x.rssMiB)),
      baseline: 'cat + fsync',
      baseMs: catMs,
      kind: 'time',
    })
    rows.push(sealRow('pi-node seal (whole process)', runs.app))
    if (handed) {
      rows.push({
        ...sealRow('pi-node seal (handed to serve)', handed.runs),
        baseMs: median(handed.cat),
      })
      console.log(
        `  ${fmtSize(size)} handed to serve, per round against that round's cat + fsync (${handed.cat.map((x) => x.toFixed(0)).join(' / ')} ms): ` +
          `${handed.runs.map((x, r) => `${(x.ms / (handed.cat[r] as number)).toFixed(2)}×`).join(' ')}; ` +
          `serve's RSS ${handed.serveStartMiB.toFixed(0)} MiB before, peak ${handed.servePeakMiB.toFixed(0)} MiB (the CLI's: its own column); ` +
          `serve's first seal (3 B, compiles the policy) ${handed.firstMs.toFixed(0)} ms`,
      )
    }
    if (baseRuns.app.length > 0) rows.push(sealRow('pi-node seal (--base)', baseRuns.app))
    if (stages.has('seal')) rows.push(sealRow('library commitAndSealFile', runs.lib))
    if (baseRuns.lib.length > 0)
      rows.push(sealRow('library commitAndSealFile (--base)', baseRuns.lib))
    if (ROUNDS > 1) {
      const perRound = (m: Measured[]) =>
        m.map((x, r) => `${(x.ms / (runs.cat[r] as number)).toFixed(2)}×`).join(' ')
      console.log(
        `  ${fmtSize(size)} per round against that round's cat + fsync (${runs.cat.map((x) => x.toFixed(0)).join(' / ')} ms): ` +
          `pi-node seal ${perRound(runs.app)}, library ${perRound(runs.lib)}`,
      )
    }
    {
      // CPU of every thread of the whole process (start included): a seal on two cores can take
      // no less wall time than half of it.
      // The kernel's part (page cache copies, the file system) where the process reports it.
      const cpu = (m: Measured[]) =>
        `${median(m.map((x) => x.cpuMs)).toFixed(0)} ms` +
        (m[0]?.sysMs !== undefined
          ? ` (kernel ${median(m.map((x) => x.sysMs ?? 0)).toFixed(0)} ms)`
          : '')
      console.log(
        `  ${fmtSize(size)} CPU (whole process, median): pi-node seal ${cpu(runs.app)}` +
          (baseRuns.app.length > 0 ? ` (--base ${cpu(baseRuns.app)})` : '') +
          (runs.lib.length > 0 ? `, library process ${cpu(runs.lib)}` : '') +
          (baseRuns.lib.length > 0 ? ` (--base ${cpu(baseRuns.lib)})` : ''),
      )
    }
    // The later stages' inputs, made after the timed rounds (untimed): the library's capsule
    // for the add, the open and the executor, and the app's (in its data folder) for the fetch.
    const later = ['add', 'fetch', 'open', 'exec'].some((s) => stages.has(s))
    if (!later) {
      rmSync(plain, { force: true })
      printSize(size)
      continue
    }
    step(size, 'inputs of the later stages (untimed)')
    await lib('seal', plain, capsule)
    const capCat = await catCopy(capsule, join(dir, 'copy.bin'))
    if (stages.has('add')) await addStage(size, capsule, capCat.ms)
    if (stages.has('fetch')) {
      await fetchStage(size, (await sealWithApp(PI_NODE, plain, env)).result)
    }
    if (stages.has('open')) {
      step(size, 'open')
      const open = await lib('open', capsule, join(dir, 'opened.bin'))
      rows.push({
        size,
        stage: 'library openFile',
        ms: open.opMs,
        rssMiB: open.rssMiB,
        baseline: 'cat + fsync',
        baseMs: capCat.ms,
        kind: 'time',
      })
    }
    if (stages.has('exec')) {
      step(size, 'executor open → run')
      rows.push(...(await executorRows(capsule, size)))
    }
    for (const f of [plain, capsule, join(dir, 'opened.bin')]) rmSync(f, { force: true })
    printSize(size)
  }
} finally {
  await anvil.stop()
  rmSync(dir, { recursive: true, force: true })
}

function step(size: number, what: string) {
  process.stderr.write(`  ${fmtSize(size)}: ${what}\n`)
}

async function addStage(size: number, capsule: string, catMs: number) {
  for (const [op, stage] of [
    ['add', 'IPFS add (blocks copied)'],
    ['add-ref', 'IPFS add (file references)'],
  ] as const) {
    step(size, stage)
    const add = await lib(op, capsule, join(dir, `blocks-${size}`))
    rows.push({
      size,
      stage,
      ms: add.opMs,
      rssMiB: add.rssMiB,
      baseline: 'cat + fsync',
      baseMs: catMs,
      kind: 'time',
    })
    rmSync(join(dir, `blocks-${size}`), { recursive: true, force: true })
  }
}

async function fetchStage(size: number, sealed: { capsulePath: string; cid: string }) {
  // fetch: A holds the pi-node's blocks (its on-disk blockstore), B fetches into a data folder
  // of its own, as an executor node does (`packages/p2p/bench/fetch.ts`'s default `--fetcher fs`)
  const a = await createDigicapNode({ dataDir: join(dir, 'pi', 'ipfs'), datastore: 'memory' })
  const bDir = join(dir, `executor-${size}`)
  const b = await createDigicapNode({ dataDir: bDir })
  try {
    await b.libp2p.dial(a.libp2p.getMultiaddrs()[0] as never)
    step(size, 'raw libp2p stream')
    const raw = await rawStream(a, b, sealed.capsulePath)
    step(size, 'helia fetch')
    const t0 = performance.now()
    let n = 0
    const signal = AbortSignal.timeout(600_000)
    for await (const c of heliaCapsuleStore(b.helia).get(sealed.cid, { signal })) n += c.byteLength
    const fetchMs = performance.now() - t0
    if (n !== raw.bytes) throw new Error(`fetched ${n} bytes, raw stream ${raw.bytes}`)
    rows.push({
      size,
      stage: 'helia fetch (bitswap, loopback)',
      ms: fetchMs,
      baseline: 'raw libp2p stream',
      baseMs: raw.ms,
      kind: 'rate',
    })
  } finally {
    await Promise.all([a.stop(), b.stop()])
    rmSync(bDir, { recursive: true, force: true })
  }
}

function printSize(size: number) {
  console.log(`\n${fmtSize(size)} (load average ${loadavg()[0]?.toFixed(1)})`)
  console.log(
    `  ${'stage'.padEnd(34)} ${'ms'.padStart(8)} ${'MB/s'.padStart(6)} ${'RSS MiB'.padStart(8)}  ${'baseline'.padEnd(18)} ${'ms'.padStart(8)}  ratio`,
  )
  for (const r of rows.filter((x) => x.size === size)) {
    const ratio =
      r.kind === 'time'
        ? `${(r.ms / r.baseMs).toFixed(2)}× the time`
        : `${(r.baseMs / r.ms).toFixed(2)}× the throughput`
    console.log(
      `  ${r.stage.padEnd(34)} ${r.ms.toFixed(0).padStart(8)} ${mbs(size, r.ms).padStart(6)} ${(r.rssMiB?.toFixed(0) ?? '-').padStart(8)}  ${r.baseline.padEnd(18)} ${r.baseMs.toFixed(0).padStart(8)}  ${ratio}`,
    )
  }
}
