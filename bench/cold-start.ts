/**
 * Cold starts of the commands a user types often, each against a baseline in the same run:
 * `pi-node status` (a real data folder on anvil, software sealer) and `executor-node --help`
 * against `pi-node --help` and `node -e 0`. Wall time, CPU time (user + system) and peak RSS
 * (`VmHWM`, fs-peak.ts), medians of `--runs` (default 5), the cases interleaved round by round
 * so a load swing hits them alike. Each line's ratio is against `node -e 0` in the same run.
 * Each command runs with Node's compile cache off, cold (an empty directory) and warm (ADR 0046).
 * Goal (#17): `pi-node status` ≤ 0.3 s and ≤ 100 MiB, absolute, on this machine with the compile
 * cache off (systemd units turn it off, ADR 0046): each cache mode's wall time and peak RSS are
 * printed against 300 ms and 100 MiB (a loaded box inflates wall time; the load average is
 * printed with them, and the ratio to `node -e 0` shows what is the machine's). Then a one-shot
 * `executor-node run` without a daemon, split into its start-up parts, and one handed to a
 * daemon (see `oneShotRun`).
 * Prints; asserts nothing.
 *
 *   node bench/cold-start.ts [--runs 5] [--base <another built checkout>]
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '../packages/contracts/dist/testing.js'
import { measureNode } from './fs-peak.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const bin = (app: string, root = join(here, '..')) => {
  const path = join(root, `apps/${app}/bin/${app}.js`)
  // As the installed command runs: the shebang's node flags, then the bin.
  const flags = (readFileSync(path, 'utf8').split('\n')[0] as string).split(' node ')[1] ?? ''
  return [...flags.split(' ').filter(Boolean), path]
}
const i = process.argv.indexOf('--runs')
const runs = i > 0 ? Number(process.argv[i + 1]) : 5
// --base <checkout>: the one-shot run of another built checkout too, interleaved (before/after).
const b = process.argv.indexOf('--base')
const baseCheckout = b > 0 ? (process.argv[b + 1] as string) : undefined
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

/** The compile cache (ADR 0046): off, cold (an empty directory each run), warm (kept). */
type CacheMode = 'off' | 'cold' | 'warm'
const CACHE_MODES: CacheMode[] = ['off', 'cold', 'warm']
function cacheEnv(base: NodeJS.ProcessEnv, mode: CacheMode): NodeJS.ProcessEnv {
  const { NODE_COMPILE_CACHE: _user, NODE_DISABLE_COMPILE_CACHE: _off, ...env } = base
  if (mode === 'off') return { ...env, NODE_DISABLE_COMPILE_CACHE: '1' }
  const home = mode === 'warm' ? join(dir, 'cache-warm') : mkdtempSync(join(dir, 'cache-cold-'))
  return { ...env, XDG_CACHE_HOME: home }
}

const ms = (n: number) => `${n.toFixed(0).padStart(6)} ms`
const times = (n: number, base: number) => `(×${(n / base).toFixed(2)})`

/**
 * A one-shot `executor-node run` with no daemon, of a CID no peer has, with a 1 s fetch
 * time-out: everything but the fetch and the clean-up is outside the named stages (Node's
 * boot, the modules, the node's start, its stop). The run's own start line splits the start.
 * Then the same run handed to a daemon (`serve` on the same folder, ADR 0035): what is left
 * is Node's boot, the CLI's light modules and the socket. Goal (#17): ≤ 0.5 s outside the
 * stages.
 */
async function oneShotRun(env: NodeJS.ProcessEnv, nodeMs: number, nodeCpuMs: number) {
  const pi = JSON.parse(readFileSync(join(dir, 'pi', 'config.json'), 'utf8'))
  const ex = join(dir, 'executor')
  const c = pi.contracts as Record<string, string>
  const init = await measureNode(
    [
      ...bin('executor-node'),
      'init',
      '--data-dir',
      ex,
      '--capsule-registry',
      c.capsuleRegistry as string,
      '--node-registry',
      c.nodeRegistry as string,
      '--access-controller',
      c.accessController as string,
    ],
    env,
  )
  if (init.code !== 0) throw new Error(`executor-node init failed: ${init.stderr}`)
  const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  const runArgs = (...more: string[]) => runArgsOf(undefined, ...more)
  const runArgsOf = (root: string | undefined, ...more: string[]) => [
    ...bin('executor-node', root),
    'run',
    cid,
    '--fetch-timeout',
    '1',
    '--data-dir',
    ex,
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    ...more,
  ]
  const rows = new Map<string, Record<string, number[]>>()
  const add = (k: string, mode: string, v: number) => {
    const row = rows.get(k) ?? {}
    row[mode] = [...(row[mode] ?? []), v]
    rows.set(k, row)
  }
  const cleanupOf = (stderr: string) => {
    const cleanup = /✓ clean-up\s+(\d+) ms/.exec(stderr)
    if (!stderr.includes('CAPSULE_FETCH_TIMEOUT') || !cleanup)
      throw new Error(`executor-node run did not end as expected: ${stderr}`)
    return 1000 + Number(cleanup[1])
  }
  await measureNode(runArgs('--no-daemon'), cacheEnv(env, 'warm')) // fills the warm cache
  for (let r = 0; r < runs; r++) {
    for (const mode of CACHE_MODES) {
      const m = await measureNode(runArgs('--no-daemon'), cacheEnv(env, mode))
      const start = /✓ start\s+(\d+) ms\s+process (\d+), modules (\d+), node (\d+)/.exec(m.stderr)
      if (!start) throw new Error(`executor-node run printed no start line: ${m.stderr}`)
      const [startMs, processMs, modulesMs, nodeStartMs] = start.slice(1).map(Number) as number[]
      const fetchAndCleanup = cleanupOf(m.stderr)
      add('whole run (wall)', mode, m.ms)
      add('outside fetch + clean-up', mode, m.ms - fetchAndCleanup)
      add('  process (boot + CLI modules)', mode, processMs as number)
      add('  modules (node, executor)', mode, modulesMs as number)
      add('  node start', mode, nodeStartMs as number)
      add('  stop and exit', mode, m.ms - (startMs as number) - fetchAndCleanup)
      add('cpu (whole run)', mode, m.cpuMs)
      add('peak RSS MiB', mode, m.rssMiB)
      if (!baseCheckout) continue
      const o = await measureNode(runArgsOf(baseCheckout, '--no-daemon'), cacheEnv(env, mode))
      const oStart = /✓ start\s+(\d+) ms\s+process (\d+), modules (\d+)/.exec(o.stderr)
      if (!oStart) throw new Error(`--base: executor-node run printed no start line: ${o.stderr}`)
      add('base: outside fetch + clean-up', mode, o.ms - cleanupOf(o.stderr))
      add('base:   modules (node, executor)', mode, Number(oStart[3]))
      add('base: cpu (whole run)', mode, o.cpuMs)
      add('base: peak RSS MiB', mode, o.rssMiB)
    }
  }
  // The same run handed to a daemon serving the folder.
  const daemon = spawn(
    process.execPath,
    [...bin('executor-node'), 'serve', '--data-dir', ex, '--listen', '/ip4/127.0.0.1/tcp/0'],
    { env: cacheEnv(env, 'warm'), stdio: 'ignore' },
  )
  try {
    const socket = join(ex, 'run.sock')
    for (let t = 0; !existsSync(socket) || !existsSync(join(ex, 'run.token')); t++) {
      if (t > 1200 || daemon.exitCode !== null) throw new Error('executor-node serve did not start')
      await new Promise((r) => setTimeout(r, 100))
    }
    await measureNode(runArgs(), cacheEnv(env, 'warm'))
    for (let r = 0; r < runs; r++) {
      for (const mode of ['off', 'warm'] as const) {
        const m = await measureNode(runArgs(), cacheEnv(env, mode))
        if (m.stderr.includes('✓ start'))
          throw new Error(`run did not go to the daemon: ${m.stderr}`)
        add('daemon: whole run (wall)', mode, m.ms)
        add('daemon: outside fetch + clean-up', mode, m.ms - cleanupOf(m.stderr))
        add('daemon: cpu (CLI process)', mode, m.cpuMs)
        add('daemon: peak RSS (CLI) MiB', mode, m.rssMiB)
      }
    }
  } finally {
    daemon.kill('SIGTERM')
  }
  console.log(
    `one-shot executor-node run (fetch time-out 1 s), median of ${runs}; ratio to node -e 0`,
  )
  console.log(`  ${''.padEnd(34)}${CACHE_MODES.map((m) => `cache ${m}`.padEnd(24)).join('')}`)
  for (const [k, row] of rows) {
    const cells = CACHE_MODES.map((mode) => {
      const v = row[mode]
      if (!v) return ''.padEnd(24)
      if (k.endsWith('MiB')) return `${median(v).toFixed(0).padStart(6)} MiB`.padEnd(24)
      const base = k.includes('cpu') ? nodeCpuMs : nodeMs
      return `${ms(median(v))} ${times(median(v), base)}`.padEnd(24)
    })
    console.log(`  ${k.padEnd(34)}${cells.join('')}`)
  }
  console.log('  goal: ≤ 500 ms outside the stages (fetch time-out and clean-up subtracted)')
}

const dir = mkdtempSync(join(tmpdir(), 'digicap-cold-start-'))
const anvil = await startAnvil()
try {
  const env = { ...process.env, DIGICAP_DATA_DIR: join(dir, 'pi'), DIGICAP_RPC_URL: anvil.rpcUrl }
  const init = await measureNode(
    [...bin('pi-node'), 'init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer'],
    cacheEnv(env, 'off'),
  )
  if (init.code !== 0) throw new Error(`pi-node init failed: ${init.stderr}`)
  const cases: [string, CacheMode, string[]][] = [
    ['node -e 0', 'off', ['-e', '0']],
    ['pi-node --help', 'off', [...bin('pi-node'), '--help']],
    ['pi-node --help', 'warm', [...bin('pi-node'), '--help']],
    ...CACHE_MODES.map((m): [string, CacheMode, string[]] => [
      'pi-node status',
      m,
      [...bin('pi-node'), 'status'],
    ]),
    ['executor-node --help', 'off', [...bin('executor-node'), '--help']],
    ['executor-node --help', 'warm', [...bin('executor-node'), '--help']],
  ]
  console.log(
    `cold starts, median of ${runs}; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; compile cache off, cold (empty) or warm (ADR 0046)`,
  )
  for (const [, mode, args] of cases)
    if (mode === 'warm') await measureNode(args, cacheEnv(env, mode))
  const runsOf = cases.map(() => ({ ms: [] as number[], cpu: [] as number[], rss: [] as number[] }))
  for (let r = 0; r < runs; r++) {
    for (const [k, [name, mode, args]] of cases.entries()) {
      const m = await measureNode(args, cacheEnv(env, mode))
      if (m.code !== 0) throw new Error(`${name} failed: ${m.stderr}`)
      const into = runsOf[k] as (typeof runsOf)[number]
      into.ms.push(m.ms)
      into.cpu.push(m.cpuMs)
      into.rss.push(m.rssMiB)
    }
  }
  const base = runsOf[0] as (typeof runsOf)[number]
  for (const [k, [name, mode]] of cases.entries()) {
    const m = runsOf[k] as (typeof runsOf)[number]
    const wall = median(m.ms)
    const cpu = median(m.cpu)
    const label = k === 0 ? name : `${name}, cache ${mode}`
    console.log(
      `  ${label.padEnd(30)} ${ms(wall)} ${times(wall, median(base.ms))}` +
        ` cpu ${ms(cpu)} ${times(cpu, median(base.cpu))} ${median(m.rss).toFixed(0).padStart(5)} MiB`,
    )
  }
  const load = loadavg()[0] as number
  for (const [k, [name, mode]] of cases.entries()) {
    if (name !== 'pi-node status') continue
    const m = runsOf[k] as (typeof runsOf)[number]
    const [wall, rss] = [median(m.ms), median(m.rss)]
    console.log(
      `  goal (#17) pi-node status, cache ${mode.padEnd(4)}: ${wall.toFixed(0)} ms of 300 ms ${wall <= 300 ? 'met' : 'MISSED'}, ` +
        `${rss.toFixed(0)} MiB of 100 MiB ${rss <= 100 ? 'met' : 'MISSED'} (load ${load.toFixed(1)})`,
    )
  }
  await oneShotRun(env, median(base.ms), median(base.cpu))
} finally {
  await anvil.stop()
  // A daemon that just stopped may still be removing its socket and lock: retry ENOTEMPTY.
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
}
