/**
 * Where a CPU profile's time went: self time by package (or file) and by function, busiest
 * first, idle (and the profiler's own `Profiler.stop`) excluded. For the flood bench's `FLOOD_CPU_PROF` profiles.
 *
 * Run: `node bench/cpu-profile-summary.ts <file.cpuprofile>... [--top N]`
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const args = process.argv.slice(2)
const topAt = args.indexOf('--top')
const top = topAt >= 0 ? Number(args[topAt + 1]) : 25
const files = args.filter((a, i) => a !== '--top' && i !== topAt + 1)
const byPackage = new Map<string, number>()
const byFunction = new Map<string, number>()
let busy = 0
let idle = 0
const add = <K>(m: Map<K, number>, k: K, v: number): void => {
  m.set(k, (m.get(k) ?? 0) + v)
}
/** `node_modules/.pnpm/<dir>/node_modules/<name>/...` → `<name>`; workspace files by path. */
const where = (url: string): string => {
  const mod = url.split('node_modules/').at(-1) ?? url
  if (url.includes('node_modules/')) {
    const parts = mod.split('/')
    return (parts[0]?.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/')
  }
  return url.replace(/^.*\/packages\//, 'packages/') || '(native)'
}
for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const ms = new Map<number, number>()
  for (const [i, id] of p.samples.entries()) add(ms, id, (p.timeDeltas[i] ?? 0) / 1000)
  for (const n of p.nodes) {
    const t = ms.get(n.id) ?? 0
    // The profiler's own stop call (node:inspector) is not the keyguard's work.
    if (n.callFrame.functionName === '(idle)' || n.callFrame.url === 'node:inspector') {
      idle += t
      continue
    }
    busy += t
    add(byPackage, where(n.callFrame.url), t)
    const fn = n.callFrame.functionName || '(anonymous)'
    add(byFunction, `${fn} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`, t)
  }
}
const show = (title: string, m: Map<string, number>) => {
  console.log(title)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `${v.toFixed(0).padStart(8)} ms ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`,
    )
  }
}
console.log(`busy ${busy.toFixed(0)} ms, idle ${idle.toFixed(0)} ms (${files.length} profiles)`)
show('by package or file:', byPackage)
show('by function:', byFunction)
