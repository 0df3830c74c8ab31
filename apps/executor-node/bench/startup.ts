/**
 * Start-up of the executor-node binary, against pi-node's in the same run (the baseline: a CLI
 * of the same shape). Prints, for each, the median wall time and the CPU time of the child
 * (user + system, from /proc-free `process.cpuUsage` inside a wrapper), and the ratio.
 * Also the CPU cost of the modules a `run` must load (what remains of its start-up).
 *
 *   node bench/startup.ts [runs]      (after `pnpm build`)
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const runs = Number(process.argv[2] ?? 5)
const bin = (app: string) => fileURLToPath(new URL(`../../${app}/bin/${app}.js`, import.meta.url))

/** Runs `code` in a fresh Node; it prints its own CPU ms last. Returns [wall ms, cpu ms]. */
function measure(code: string): [number, number] {
  const t = performance.now()
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  })
  const wall = performance.now() - t
  if (r.status !== 0) throw new Error(r.stderr)
  return [wall, Number(r.stdout.trim().split('\n').at(-1))]
}

const cliCode = (path: string, args: string[]) => `
process.argv = [process.argv[0], ${JSON.stringify(path)}, ...${JSON.stringify(args)}]
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = () => true
await import(${JSON.stringify(path)})
const c = process.cpuUsage()
write(String((c.user + c.system) / 1000) + '\\n')
`
const importCode = (m: string) => `
await import(${JSON.stringify(m)})
const c = process.cpuUsage()
console.log((c.user + c.system) / 1000)
`

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

function row(name: string, code: string): number {
  const walls: number[] = []
  const cpus: number[] = []
  for (let i = 0; i < runs; i++) {
    const [w, c] = measure(code)
    walls.push(w)
    cpus.push(c)
  }
  const cpu = median(cpus)
  console.log(
    `${name.padEnd(36)} ${median(walls).toFixed(0).padStart(6)} ms wall ${cpu.toFixed(0).padStart(6)} ms cpu`,
  )
  return cpu
}

const base = row('pi-node --help (baseline)', cliCode(bin('pi-node'), ['--help']))
const help = row('executor-node --help', cliCode(bin('executor-node'), ['--help']))
row('executor-node --version', cliCode(bin('executor-node'), ['--version']))
console.log(`executor-node --help / pi-node --help CPU: ${(help / base).toFixed(2)}×`)
console.log('\nwhat `run` must still load (fresh process each):')
for (const m of ['ethers', '@digicap/keyguard', '@digicap/p2p', '@digicap/executor']) {
  row(`  import ${m}`, importCode(m))
}
// The node itself loads part of its stack when it starts (helia's class), so time a start too.
row(
  '  import @digicap/p2p + start a node',
  `
const { createDigicapNode } = await import('@digicap/p2p')
const node = await createDigicapNode()
await node.stop()
const c = process.cpuUsage()
console.log((c.user + c.system) / 1000)
`,
)
// What `run`'s start stage loads and does, together in one process.
row(
  "  run's start: all four + a node",
  `
await Promise.all(['ethers', '@digicap/keyguard', '@digicap/executor'].map((m) => import(m)))
const { createDigicapNode } = await import('@digicap/p2p')
const node = await createDigicapNode()
await node.stop()
const c = process.cpuUsage()
console.log((c.user + c.system) / 1000)
`,
)
