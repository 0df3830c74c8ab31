/**
 * The executor's stages after the key release — open → run → clean-up (ADR 0035: the payload
 * streamed to the run's tmpfs file, the stock data sandbox, the file wiped) — each in its own
 * process, against capsule-core's `openFile` of the same capsule to the same tmpfs, measured in
 * the same run. Peak RSS is each child's own (`VmHWM`, fs-peak.ts); CPU is the operation's
 * own (all threads). Rounds alternate which side goes first, so load drifts hit both alike;
 * the rows are medians, and the paired ratio is the median of each round's own ratio.
 *
 * `node bench/executor-stages.ts <capsule> <size> [--rounds N]` (a capsule `lib-op.ts seal`
 * made), or `node bench/executor-stages.ts --sizes 1M,100M,1G --rounds 5 [--dir <folder>]`:
 * seals the capsules, interleaves sizes and sides round by round, prints a Markdown table.
 * With `--header-check`, the sides are instead the executor's open given the loader's proof of
 * the header signature against the open that checks it again (the run path before): one check
 * against two per run, paired round by round.
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { measureNode } from './fs-peak.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
/** The bench capsules' data key (lib-op.ts seals with it). */
const KEY_HEX = '09'.repeat(32)

export interface StageRow {
  size: number
  stage: string
  ms: number
  rssMiB?: number
  /** CPU time of the operation (all threads), ms. */
  cpuMs?: number
  baseline: string
  baseMs: number
  /** `time`: ms / baseMs (lower is better); `rate`: baseMs / ms as a throughput ratio. */
  kind: 'time' | 'rate'
}

interface LibOp {
  ms: number
  cpuMs: number
}
interface ExecOp extends LibOp {
  mainCpuMs: number
  openMs: number
  runMs: number
  cleanupMs: number
  /** Signature checks the open made (0 with the loader's proof). */
  headerChecks: number
  /** The loader's check before the open (the process's first), ms. */
  loaderCheckMs: number
}
/** One round: both sides on the same capsule, one after the other. */
export interface StageSample {
  lib: LibOp & { rssMiB: number }
  exec: ExecOp & { rssMiB: number }
}

async function child<T>(args: string[]): Promise<T & { rssMiB: number }> {
  const m = await measureNode(args)
  if (m.code !== 0) throw new Error(`${args.join(' ')} failed: ${m.stderr}`)
  return { ...(JSON.parse(m.stdout.trim().split('\n').at(-1) as string) as T), rssMiB: m.rssMiB }
}

/** One round on `capsule`; `execFirst` swaps the order. */
export async function stageSample(capsule: string, execFirst: boolean): Promise<StageSample> {
  const lib = async () => {
    const shm = join('/dev/shm', `digicap-bench-open-${process.pid}.bin`)
    try {
      return await child<LibOp>([join(here, 'lib-op.ts'), 'open', capsule, shm])
    } finally {
      rmSync(shm, { force: true })
    }
  }
  const exec = () => child<ExecOp>([join(here, 'executor-op.ts'), capsule, KEY_HEX])
  if (execFirst) {
    const e = await exec()
    return { exec: e, lib: await lib() }
  }
  const l = await lib()
  return { lib: l, exec: await exec() }
}

/** One round of `--header-check`: the open with the loader's proof, and without it. */
export async function headerCheckSample(capsule: string, twiceFirst: boolean) {
  const run = (twice: boolean) =>
    child<ExecOp>([
      join(here, 'executor-op.ts'),
      capsule,
      KEY_HEX,
      ...(twice ? ['--header-checked-twice'] : []),
    ])
  if (twiceFirst) {
    const twice = await run(true)
    return { twice, once: await run(false) }
  }
  const once = await run(false)
  return { once, twice: await run(true) }
}

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** Median rows of the samples of one size. */
export function stageRows(size: number, samples: readonly StageSample[]): StageRow[] {
  const med = (f: (s: StageSample) => number) => median(samples.map(f))
  const base = {
    size,
    baseline: 'openFile → tmpfs',
    baseMs: med((s) => s.lib.ms),
    kind: 'time' as const,
  }
  return [
    {
      ...base,
      stage: 'library openFile → tmpfs',
      ms: base.baseMs,
      rssMiB: med((s) => s.lib.rssMiB),
      cpuMs: med((s) => s.lib.cpuMs),
    },
    {
      ...base,
      stage: 'executor open → run → clean-up',
      ms: med((s) => s.exec.ms),
      rssMiB: med((s) => s.exec.rssMiB),
      cpuMs: med((s) => s.exec.cpuMs),
    },
    { ...base, stage: '  of which open (→ tmpfs file)', ms: med((s) => s.exec.openMs) },
    { ...base, stage: '  of which run (data sandbox)', ms: med((s) => s.exec.runMs) },
    { ...base, stage: '  of which clean-up (wipe file)', ms: med((s) => s.exec.cleanupMs) },
  ]
}

/** Rows for one capsule of `size` plaintext bytes sealed by lib-op.ts (data runtime). */
export async function executorRows(capsule: string, size: number, rounds = 1): Promise<StageRow[]> {
  const samples: StageSample[] = []
  for (let r = 0; r < rounds; r++) samples.push(await stageSample(capsule, r % 2 === 1))
  return stageRows(size, samples)
}

const MiB = 1024 * 1024
const fmtSize = (n: number) => (n >= 1024 * MiB ? `${n / 1024 / MiB} GiB` : `${n / MiB} MiB`)
const range = (xs: readonly number[], f = (x: number) => x.toFixed(0)) =>
  `${f(Math.min(...xs))}–${f(Math.max(...xs))}`

/** The Markdown table of every size's samples. */
function table(bySize: Map<number, StageSample[]>): string {
  const lines = [
    '| plaintext | `openFile` → tmpfs ms (range) | executor ms (range) | ratio of medians | paired ratio, median (range) | paired, without clean-up | CPU ms `openFile` / executor (open’s thread) | executor open / clean-up ms | RSS MiB `openFile` / executor |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for (const [size, samples] of bySize) {
    const lib = samples.map((s) => s.lib.ms)
    const exec = samples.map((s) => s.exec.ms)
    const paired = samples.map((s) => s.exec.ms / s.lib.ms)
    const openRun = samples.map((s) => (s.exec.ms - s.exec.cleanupMs) / s.lib.ms)
    const med = (f: (s: StageSample) => number) => median(samples.map(f)).toFixed(0)
    lines.push(
      `| ${fmtSize(size)} | ${median(lib).toFixed(0)} (${range(lib)}) | ${median(exec).toFixed(0)} (${range(exec)}) | ${(median(exec) / median(lib)).toFixed(2)}× | ${median(paired).toFixed(2)}× (${range(paired, (x) => x.toFixed(2))}) | ${median(openRun).toFixed(2)}× | ${med((s) => s.lib.cpuMs)} / ${med((s) => s.exec.cpuMs)} (${med((s) => s.exec.mainCpuMs)}) | ${med((s) => s.exec.openMs)} / ${med((s) => s.exec.cleanupMs)} | ${med((s) => s.lib.rssMiB)} / ${med((s) => s.exec.rssMiB)} (max ${Math.max(...samples.map((s) => s.exec.rssMiB)).toFixed(0)}) |`,
    )
  }
  return lines.join('\n')
}

/** The Markdown table of `--header-check`: per size, the open's time and CPU, once against twice. */
function headerCheckTable(
  bySize: Map<number, Awaited<ReturnType<typeof headerCheckSample>>[]>,
): string {
  const lines = [
    '| plaintext | open ms, header checked once / twice (medians) | paired twice − once ms, median (range) | open’s thread CPU ms once / twice | paired CPU twice − once ms, median (range) | signature checks in the open once / twice | the loader’s check (cold) ms |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ]
  for (const [size, samples] of bySize) {
    const med = (f: (s: (typeof samples)[number]) => number) => median(samples.map(f))
    const diff = samples.map((s) => s.twice.openMs - s.once.openMs)
    const cpu = samples.map((s) => s.twice.mainCpuMs - s.once.mainCpuMs)
    const checks = (k: 'once' | 'twice') => [...new Set(samples.map((s) => s[k].headerChecks))]
    lines.push(
      `| ${fmtSize(size)} | ${med((s) => s.once.openMs).toFixed(1)} / ${med((s) => s.twice.openMs).toFixed(1)} | ${median(diff).toFixed(1)} (${range(diff, (x) => x.toFixed(1))}) | ${med((s) => s.once.mainCpuMs).toFixed(1)} / ${med((s) => s.twice.mainCpuMs).toFixed(1)} | ${median(cpu).toFixed(1)} (${range(cpu, (x) => x.toFixed(1))}) | ${checks('once')} / ${checks('twice')} | ${med((s) => s.once.loaderCheckMs).toFixed(1)} |`,
    )
  }
  return lines.join('\n')
}

/** `size` random (incompressible) bytes at `path`, written 16 MiB at a time. */
export function writeRandom(path: string, size: number) {
  const fd = openSync(path, 'w')
  const block = Buffer.allocUnsafe(16 * MiB)
  for (let left = size; left > 0; left -= block.length) {
    randomFillSync(block)
    writeSync(fd, block, 0, Math.min(block.length, left))
  }
  closeSync(fd)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2)
  const opt = (name: string) => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const rounds = Number(opt('--rounds') ?? 1)
  const sizesOpt = opt('--sizes')
  if (!sizesOpt) {
    // `<capsule> <size>`: these rows alone, for a capsule at hand.
    const [capsule, size] = argv as [string, string]
    for (const r of await executorRows(capsule, Number(size), rounds)) {
      console.log(
        `${r.stage.padEnd(34)} ${r.ms.toFixed(0).padStart(8)} ms ${(r.cpuMs?.toFixed(0) ?? '-').padStart(8)} ms cpu ${(r.rssMiB?.toFixed(0) ?? '-').padStart(6)} MiB  ${(r.ms / r.baseMs).toFixed(2)}× ${r.baseline}`,
      )
    }
  } else {
    const parse = (s: string) => {
      const m = /^(\d+)([KMG]?)$/i.exec(s.trim())
      if (!m) throw new Error(`bad size ${s}`)
      const unit = { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[(m[2] as string).toUpperCase()]
      return Number(m[1]) * (unit as number)
    }
    const sizes = sizesOpt.split(',').map(parse)
    const dir = mkdtempSync(join(opt('--dir') ?? tmpdir(), 'digicap-exec-bench-'))
    try {
      const capsules = new Map<number, string>()
      for (const size of sizes) {
        const input = join(dir, `in-${size}.bin`)
        writeRandom(input, size)
        const capsule = join(dir, `cap-${size}.capsule`)
        await child([join(here, 'lib-op.ts'), 'seal', input, capsule])
        rmSync(input)
        capsules.set(size, capsule)
      }
      /** Every size each round, the sides' order swapped every other round; then the table. */
      const interleave = async <T>(
        sample: (capsule: string, swap: boolean) => Promise<T>,
        line: (s: T) => string,
        tableOf: (bySize: Map<number, T[]>) => string,
      ) => {
        const loads: number[] = []
        const bySize = new Map<number, T[]>(sizes.map((s) => [s, []]))
        for (let r = 0; r < rounds; r++) {
          for (const size of sizes) {
            loads.push(loadavg()[0] as number)
            const s = await sample(capsules.get(size) as string, r % 2 === 1)
            bySize.get(size)?.push(s)
            console.error(
              `round ${r + 1} ${fmtSize(size)}: ${line(s)}, load ${loads.at(-1)?.toFixed(1)}`,
            )
          }
        }
        console.log(
          `\n${rounds} rounds, node ${process.version}, load average ${range(loads, (x) => x.toFixed(1))} (median ${median(loads).toFixed(1)})\n`,
        )
        console.log(tableOf(bySize))
      }
      if (argv.includes('--header-check')) {
        await interleave(
          headerCheckSample,
          (s) => `open ${s.once.openMs.toFixed(1)} ms once, ${s.twice.openMs.toFixed(1)} ms twice`,
          headerCheckTable,
        )
      } else {
        await interleave(
          stageSample,
          (s) =>
            `openFile ${s.lib.ms.toFixed(0)} ms, executor ${s.exec.ms.toFixed(0)} ms (${(s.exec.ms / s.lib.ms).toFixed(2)}×)`,
          table,
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
