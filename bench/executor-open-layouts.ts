/**
 * The executor's open in one process (since ADR 0059 one pass: the payload digest comes from
 * the commitment's leaves, no hash worker), with capsule-core's `openFile` of the same capsule
 * as the baseline, paired and interleaved round by round (the side that goes first
 * alternates): ADR 0055's table, ADR 0059's.
 * Each open writes the run's plaintext file to /dev/shm and the file is wiped after it (not
 * timed). CPU is the process's (all threads); "main" is the calling thread's.
 *
 * `node bench/executor-open-layouts.ts <capsule> [--rounds N]` (a capsule `lib-op.ts seal` made).
 */
import { closeSync, openSync, readSync, rmSync } from 'node:fs'
import { loadavg } from 'node:os'
import {
  openFile,
  parseCapsuleHeader,
  verifiedCapsuleHeader,
} from '../packages/capsule-core/dist/index.js'
import { openPayloadToFile } from '../packages/executor/src/run/open-payload.ts'
import { createRunWorkspace } from '../packages/executor/src/run/workspace.ts'
import { median } from './executor-stages.ts'

const argv = process.argv.slice(2)
const capsule = argv[0] as string
const at = argv.indexOf('--rounds')
const rounds = at >= 0 ? Number(argv[at + 1]) : 3
/** The bench capsules' data key (lib-op.ts seals with it). */
const key = () => new Uint8Array(Buffer.from('09'.repeat(32), 'hex'))
const head = new Uint8Array(1024 * 1024)
const fd = openSync(capsule, 'r')
readSync(fd, head, 0, head.byteLength, 0)
closeSync(fd)
const parsed = parseCapsuleHeader(head)
const verified = verifiedCapsuleHeader(parsed)
const src = {
  path: capsule,
  owner: parsed.header.owner,
  plaintextSize: parsed.header.payload.plaintextSize,
  parsed,
  verified,
}

type Side = 'executor open' | 'openFile'
const sides: Side[] = ['executor open', 'openFile']
const samples = new Map<Side, { ms: number; cpuMs: number; mainMs: number }[]>()
const loads: number[] = []

async function once(side: Side) {
  const cpu0 = process.cpuUsage()
  const main0 = process.threadCpuUsage()
  const t0 = performance.now()
  let done: () => Promise<void>
  if (side === 'openFile') {
    const out = `/dev/shm/digicap-bench-layouts-${process.pid}.bin`
    await openFile({ input: capsule, output: out, dataKey: key(), verified })
    done = async () => rmSync(out, { force: true })
  } else {
    const ws = createRunWorkspace()
    const dir = ws.tempDir('plaintext-', '/dev/shm')
    await openPayloadToFile(src, key(), { dir, workspace: ws })
    done = async () => void (await ws.dispose())
  }
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const main = process.threadCpuUsage(main0)
  await done()
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, mainMs: (main.user + main.system) / 1000 }
}

for (let r = 0; r < rounds; r++) {
  for (const side of r % 2 ? [...sides].reverse() : sides) {
    loads.push(loadavg()[0] as number)
    const s = await once(side)
    samples.set(side, [...(samples.get(side) ?? []), s])
    console.error(`round ${r + 1} ${side}: ${s.ms.toFixed(0)} ms, cpu ${s.cpuMs.toFixed(0)} ms`)
  }
}
const lib = samples.get('openFile') ?? []
console.log(
  `\n${rounds} rounds, ${parsed.header.payload.plaintextSize} bytes, node ${process.version}, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}\n`,
)
console.log('| layout | ms | CPU ms (main thread) | ms / openFile | CPU / openFile |')
console.log('| --- | --- | --- | --- | --- |')
for (const side of sides) {
  const xs = samples.get(side) ?? []
  const med = (f: (x: (typeof xs)[number]) => number) => median(xs.map(f))
  const libMed = (f: (x: (typeof lib)[number]) => number) => median(lib.map(f))
  console.log(
    `| ${side} | ${med((x) => x.ms).toFixed(0)} | ${med((x) => x.cpuMs).toFixed(0)} (${med((x) => x.mainMs).toFixed(0)}) | ${(med((x) => x.ms) / libMed((x) => x.ms)).toFixed(2)}× | ${(med((x) => x.cpuMs) / libMed((x) => x.cpuMs)).toFixed(2)}× |`,
  )
}
