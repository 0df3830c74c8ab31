/**
 * The executor's stages after the key release — open → run → clean-up (ADR 0035: the payload
 * streamed to the run's tmpfs file, the stock data sandbox, the file wiped) — each in its own
 * process, against capsule-core's `openFile` of the same capsule to the same tmpfs, measured in
 * the same run. Peak RSS is each child's own (`VmHWM`, fs-peak.ts).
 */
import { rmSync } from 'node:fs'
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
  baseline: string
  baseMs: number
  /** `time`: ms / baseMs (lower is better); `rate`: baseMs / ms as a throughput ratio. */
  kind: 'time' | 'rate'
}

async function child(args: string[]) {
  const m = await measureNode(args)
  if (m.code !== 0) throw new Error(`${args.join(' ')} failed: ${m.stderr}`)
  return { ...m, op: JSON.parse(m.stdout.trim().split('\n').at(-1) as string) }
}

/** Rows for one capsule of `size` plaintext bytes sealed by lib-op.ts (data runtime). */
export async function executorRows(capsule: string, size: number): Promise<StageRow[]> {
  const shm = join('/dev/shm', `digicap-bench-open-${process.pid}.bin`)
  const lib = await child([join(here, 'lib-op.ts'), 'open', capsule, shm])
  rmSync(shm, { force: true })
  const exec = await child([join(here, 'executor-op.ts'), capsule, KEY_HEX])
  const op = exec.op as { ms: number; openMs: number; runMs: number; cleanupMs: number }
  const base = {
    size,
    baseline: 'openFile → tmpfs',
    baseMs: lib.op.ms as number,
    kind: 'time' as const,
  }
  return [
    { ...base, stage: 'library openFile → tmpfs', ms: lib.op.ms, rssMiB: lib.rssMiB },
    { ...base, stage: 'executor open → run → clean-up', ms: op.ms, rssMiB: exec.rssMiB },
    { ...base, stage: '  of which open (→ tmpfs file)', ms: op.openMs },
    { ...base, stage: '  of which run (data sandbox)', ms: op.runMs },
    { ...base, stage: '  of which clean-up (wipe file)', ms: op.cleanupMs },
  ]
}

// `node bench/executor-stages.ts <capsule> <size>`: these rows alone, for a capsule at hand.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [capsule, size] = process.argv.slice(2) as [string, string]
  for (const r of await executorRows(capsule, Number(size))) {
    console.log(
      `${r.stage.padEnd(34)} ${r.ms.toFixed(0).padStart(8)} ms ${(r.rssMiB?.toFixed(0) ?? '-').padStart(6)} MiB  ${(r.ms / r.baseMs).toFixed(2)}× ${r.baseline}`,
    )
  }
}
