/**
 * Cold starts of the commands a user types often, each against a baseline in the same run:
 * `pi-node status` (a real data folder on anvil, software sealer) and `executor-node --help`
 * against `pi-node --help` and `node -e 0`. Wall time, CPU time (user + system) and peak RSS
 * (`VmHWM`, fs-peak.ts), medians of `--runs` (default 5), the cases interleaved round by round
 * so a load swing hits them alike. Each line's ratio is against `node -e 0` in the same run.
 * Goal (#17): `pi-node status` ≤ 0.3 s and ≤ 100 MiB, read here as ≤ 6× `node -e 0`'s wall
 * time (0.3 s over the ~0.05 s node itself takes on a quiet machine). Prints; asserts nothing.
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
} finally {
  await anvil.stop()
  rmSync(dir, { recursive: true, force: true })
}
