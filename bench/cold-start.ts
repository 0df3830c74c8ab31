/**
 * Cold starts of the commands a user types often, each against a baseline in the same run:
 * `pi-node status` (a real data folder on anvil, software sealer) and `executor-node --help`
 * against `pi-node --help` and `node -e 0`. Wall time, CPU time (user + system) and peak RSS
 * (`VmHWM`, fs-peak.ts), medians of `--runs` (default 5), the cases interleaved round by round
 * so a load swing hits them alike. Each line's ratio is against `node -e 0` in the same run.
 * Goal (#17): `pi-node status` ≤ 0.3 s and ≤ 100 MiB, read here as ≤ 6× `node -e 0`'s wall
 * time (0.3 s over the ~0.05 s node itself takes on a quiet machine). Then a one-shot
 * `executor-node run` without a daemon, split into its start-up parts (see `oneShotRun`).
 * Prints; asserts nothing.
 *
 *   node bench/cold-start.ts [--runs 5]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '../packages/contracts/dist/testing.js'
import { measureNode } from './fs-peak.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const bin = (app: string) => {
  const path = join(here, `../apps/${app}/bin/${app}.js`)
  // As the installed command runs: the shebang's node flags, then the bin.
  const flags = (readFileSync(path, 'utf8').split('\n')[0] as string).split(' node ')[1] ?? ''
  return [...flags.split(' ').filter(Boolean), path]
}
const i = process.argv.indexOf('--runs')
const runs = i > 0 ? Number(process.argv[i + 1]) : 5
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

/**
 * A one-shot `executor-node run` with no daemon, of a CID no peer has, with a 1 s fetch
 * time-out: everything but the fetch and the clean-up is outside the named stages (Node's
 * boot, the modules, the node's start, its stop). The run's own start line splits the start.
 * Goal (#17): ≤ 0.5 s outside the stages.
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
  const rows: Record<string, number[]> = {}
  const add = (k: string, v: number) => {
    rows[k] = [...(rows[k] ?? []), v]
  }
  for (let r = 0; r < runs; r++) {
    const m = await measureNode(
      [
        ...bin('executor-node'),
        'run',
        cid,
        '--no-daemon',
        '--fetch-timeout',
        '1',
        '--data-dir',
        ex,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
      ],
      env,
    )
    const start = /✓ start\s+(\d+) ms\s+process (\d+), modules (\d+), node (\d+)/.exec(m.stderr)
    const cleanup = /✓ clean-up\s+(\d+) ms/.exec(m.stderr)
    if (!m.stderr.includes('CAPSULE_FETCH_TIMEOUT') || !start || !cleanup)
      throw new Error(`executor-node run did not end as expected: ${m.stderr}`)
    const [startMs, processMs, modulesMs, nodeStartMs] = start.slice(1).map(Number) as number[]
    const fetchAndCleanup = 1000 + Number(cleanup[1])
    add('whole run (wall)', m.ms)
    add('outside fetch + clean-up', m.ms - fetchAndCleanup)
    add('  process (boot + CLI modules)', processMs as number)
    add('  modules (node, executor)', modulesMs as number)
    add('  node start', nodeStartMs as number)
    add('  stop and exit', m.ms - (startMs as number) - fetchAndCleanup)
    add('cpu (whole run)', m.cpuMs)
    add('peak RSS MiB', m.rssMiB)
  }
  console.log(`one-shot executor-node run, no daemon (fetch time-out 1 s), median of ${runs}`)
  for (const [k, v] of Object.entries(rows)) {
    const unit = k.endsWith('MiB') ? '' : ' ms'
    const base = k.startsWith('cpu') ? nodeCpuMs : nodeMs
    const ratio = unit ? ` (×${(median(v) / base).toFixed(2)} node -e 0)` : ''
    console.log(`  ${k.padEnd(32)} ${median(v).toFixed(0).padStart(6)}${unit}${ratio}`)
  }
  console.log('  goal: ≤ 500 ms outside the stages (fetch time-out and clean-up subtracted)')
}

const dir = mkdtempSync(join(tmpdir(), 'digicap-cold-start-'))
const anvil = await startAnvil()
try {
  const env = { ...process.env, DIGICAP_DATA_DIR: join(dir, 'pi'), DIGICAP_RPC_URL: anvil.rpcUrl }
  const init = await measureNode(
    [...bin('pi-node'), 'init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer'],
    env,
  )
  if (init.code !== 0) throw new Error(`pi-node init failed: ${init.stderr}`)
  const cases: [string, string[]][] = [
    ['node -e 0', ['-e', '0']],
    ['pi-node --help', [...bin('pi-node'), '--help']],
    ['pi-node status', [...bin('pi-node'), 'status']],
    ['executor-node --help', [...bin('executor-node'), '--help']],
  ]
  console.log(
    `cold starts, median of ${runs}; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  )
  const runsOf = cases.map(() => ({ ms: [] as number[], cpu: [] as number[], rss: [] as number[] }))
  for (let r = 0; r < runs; r++) {
    for (const [k, [name, args]] of cases.entries()) {
      const m = await measureNode(args, env)
      if (m.code !== 0) throw new Error(`${name} failed: ${m.stderr}`)
      const into = runsOf[k] as (typeof runsOf)[number]
      into.ms.push(m.ms)
      into.cpu.push(m.cpuMs)
      into.rss.push(m.rssMiB)
    }
  }
  const base = runsOf[0] as (typeof runsOf)[number]
  for (const [k, [name]] of cases.entries()) {
    const m = runsOf[k] as (typeof runsOf)[number]
    const wall = median(m.ms)
    const cpu = median(m.cpu)
    console.log(
      `  ${name.padEnd(22)} ${wall.toFixed(0).padStart(6)} ms (×${(wall / median(base.ms)).toFixed(2)})` +
        ` cpu ${cpu.toFixed(0).padStart(5)} ms (×${(cpu / median(base.cpu)).toFixed(2)})` +
        ` ${median(m.rss).toFixed(0).padStart(5)} MiB`,
    )
  }
  console.log('  goal: pi-node status ≤ ×6 the wall time of node -e 0, ≤ 100 MiB')
  await oneShotRun(env, median(base.ms), median(base.cpu))
} finally {
  await anvil.stop()
  rmSync(dir, { recursive: true, force: true })
}
