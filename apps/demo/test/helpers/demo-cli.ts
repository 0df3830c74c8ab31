/**
 * What the demo's tests compute or run beside the shared demo run: the aggregate expected of
 * the capsule (computed here, apart from the sandboxed program), process probes, and one-shot
 * runs of the demo's CLI (`node bin/demo.js`, `pnpm demo` from the root).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { collectOutput } from '@digicap/cli-kit'

const DEMO = fileURLToPath(new URL('../../bin/demo.js', import.meta.url))
const REPO = fileURLToPath(new URL('../../../../', import.meta.url))

interface ColumnStats {
  count: number
  mean: number
  median: number
  min: number
  max: number
}

/** The aggregate, computed independently of the sandboxed program. */
export function expectedAggregate(csv: string): {
  rows: number
  stats: Record<string, ColumnStats>
} {
  const [head, ...rows] = csv.trim().split('\n')
  const names = (head as string).split(',')
  const stats: Record<string, ColumnStats> = {}
  names.forEach((name, i) => {
    const xs = rows.map((r) => r.split(',')[i] as string).map(Number)
    if (xs.some((x) => !Number.isFinite(x))) return
    xs.sort((a, b) => a - b)
    const n = xs.length
    const sum = xs.reduce((a, b) => a + b, 0)
    stats[name] = {
      count: n,
      mean: Math.round((sum / n) * 1000) / 1000,
      median:
        n % 2 ? (xs[n >> 1] as number) : ((xs[n / 2 - 1] as number) + (xs[n / 2] as number)) / 2,
      min: xs[0] as number,
      max: xs[n - 1] as number,
    }
  })
  return { rows: rows.length, stats }
}

export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => existsSync(join(d, cmd)))
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export type Run = { code: number | null; stdout: string; stderr: string }

/** `node bin/demo.js <args>`: the demo's entry point, without the build step. */
export function runDemo(args: string[]): Promise<Run> {
  return collect(spawn(process.execPath, ['--disable-warning=ExperimentalWarning', DEMO, ...args]))
}

/**
 * `pnpm demo <args>` from the repository root, exactly as the README says: the version check,
 * the (cached) build, then the demo. Its stdout must be the demo's alone.
 */
export function runPnpmDemo(args: string[]): Promise<Run> {
  return collect(spawn('pnpm', ['demo', ...args], { cwd: REPO }))
}

async function collect(child: ReturnType<typeof spawn>): Promise<Run> {
  const out = collectOutput(child)
  const code = await out.exited
  return { code, stdout: out.stdout(), stderr: out.stderr() }
}
