/**
 * The demo end to end, as a user runs it: `node src/demo.ts --json` as a child process, with a
 * real anvil, real swtpm (when installed), real helia and libp2p, every node its own process.
 * Checks both paths' results against the aggregate computed here from the same CSV, the
 * refusal's reason, the sealer, and that nothing is left running or on disk.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const DEMO = fileURLToPath(new URL('../bin/demo.js', import.meta.url))
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const CSV = fileURLToPath(new URL('../capsule/salaries.csv', import.meta.url))

interface ColumnStats {
  count: number
  mean: number
  median: number
  min: number
  max: number
}

/** The aggregate, computed independently of the sandboxed program. */
function expectedAggregate(csv: string): { rows: number; stats: Record<string, ColumnStats> } {
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

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => existsSync(join(d, cmd)))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

type Run = { code: number | null; stdout: string; stderr: string }

/** `node bin/demo.js <args>`: the demo's entry point, without the build step. */
function runDemo(args: string[]): Promise<Run> {
  return collect(spawn(process.execPath, ['--disable-warning=ExperimentalWarning', DEMO, ...args]))
}

/**
 * `pnpm demo <args>` from the repository root, exactly as the README says: the version check,
 * the (cached) build, then the demo. Its stdout must be the demo's alone.
 */
function runPnpmDemo(args: string[]): Promise<Run> {
  return collect(spawn('pnpm', ['demo', ...args], { cwd: REPO }))
}

function collect(child: ReturnType<typeof spawn>): Promise<Run> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => {
      stdout += d
    })
    child.stderr?.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('pnpm demo', () => {
  it('runs the capsule by the chain and fast paths, refuses a third run, leaves nothing behind', async () => {
    const r = await runPnpmDemo(['--json'])
    if (r.code !== 0) throw new Error(`demo failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`)
    // The whole of stdout is the document: no build banner, no script header before it.
    const doc = JSON.parse(r.stdout)
    expect(doc.ok).toBe(true)

    const expected = expectedAggregate(readFileSync(CSV, 'utf8'))
    expect(expected.rows).toBe(12)
    expect(Object.keys(expected.stats)).toEqual(['age', 'salary_eur', 'bonus_eur', 'remote_days'])
    expect(doc.runs.chain.path).toBe('chain')
    expect(doc.runs.fast.path).toBe('fast')
    expect(doc.runs.chain.result).toEqual(expected)
    expect(doc.runs.fast.result).toEqual(expected)
    expect(doc.runs.chain.runId).not.toBe(doc.runs.fast.runId)
    for (const path of ['chain', 'fast']) {
      expect(Object.keys(doc.runs[path].steps).sort()).toEqual(
        [
          'start',
          'cleanup',
          'deliver',
          'fetch',
          'grant',
          'open',
          'release',
          'run',
          'verify',
        ].sort(),
      )
    }

    expect(doc.refusal).toEqual({
      code: 'ACCESS_DENIED',
      reason: 'MAX_RUNS_REACHED',
      path: 'fast',
      message: "Access denied by the capsule's policy: MAX_RUNS_REACHED",
    })
    expect(doc.executor.reputation).toBeGreaterThanOrEqual(1)

    // the image capsule (busybox + a script over the mounted CSV), run under runc: the receiver
    // got the aggregate computed here; the second run was refused before any key was released
    const runsImages = process.getuid?.() === 0 && onPath('runc') && onPath('umoci')
    if (runsImages) {
      const salaries = readFileSync(CSV, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((row) => Number(row.split(',')[2]))
      expect(doc.image.result).toEqual({
        rows: salaries.length,
        column: 'salary_eur',
        sum: salaries.reduce((a, b) => a + b, 0),
        min: Math.min(...salaries),
        max: Math.max(...salaries),
      })
      expect(doc.image.capsule.policy).toContain('maxRuns(1)')
      expect(doc.image.refusal).toEqual({
        code: 'ACCESS_DENIED',
        reason: 'MAX_RUNS_REACHED',
        keyReleased: false,
      })
    } else {
      expect(doc.image.skipped).toBeTypeOf('string')
    }

    const swtpm = onPath('swtpm') && onPath('tpm2_createprimary')
    expect(doc.sealer.swtpm).toBe(swtpm)
    expect(doc.sealer.kind).toBe(swtpm ? 'tpm2' : 'software')
    if (!swtpm) expect(r.stderr).toContain('INSECURE SEALER')
    // The warnings say what is true of the sealer that ran: a TPM is never called a software
    // key file; the swtpm emulator is named as such; the software sealer is INSECURE.
    const warnings = (doc.warnings as string[]).join('\n')
    if (doc.sealer.kind === 'tpm2') {
      expect(warnings).not.toMatch(/software key file|INSECURE SEALER/)
      if (doc.sealer.swtpm) expect(warnings).toMatch(/software emulator \(swtpm\)/)
    } else {
      expect(warnings).toMatch(/INSECURE SEALER/)
    }

    // the timeline covers every actor, in order
    const actors = new Set(doc.timeline.map((s: { actor: string }) => s.actor))
    expect([...actors].sort()).toEqual(['chain', 'executor', 'pi-node', 'receiver'])
    for (const s of doc.timeline) {
      expect(s.startMs).toBeGreaterThanOrEqual(0)
      expect(s.durationMs).toBeGreaterThanOrEqual(0)
    }
    expect(doc.exits.serve).toBe(0)

    // nothing left running, nothing left on disk
    const whats = doc.pids.map((p: { what: string }) => p.what)
    expect(whats).toContain('anvil')
    expect(whats).toContain('pi-node serve')
    if (swtpm) expect(whats).toContain('swtpm')
    if (swtpm) {
      // the executor attests: attested() in the policy, and both runs were released through
      // the keyguard's before-quote check; the demo's own verifier saw and verified every phase
      // of the watched run (the run holds each phase until it is quoted, however slow the box)
      expect(whats).toContain('swtpm (executor)')
      expect(doc.policy).toContain('attested()')
      expect(doc.attestation.releasedAfterBeforeQuote).toBe(true)
      const phases = doc.attestation.verifier.phases as { phase: string; verdict: string }[]
      expect(phases.map((p) => [p.phase, p.verdict])).toEqual([
        ['before', 'verified'],
        ['during', 'verified'],
        ['after', 'verified'],
      ])
    }
    for (const p of doc.pids as { pid: number; what: string }[]) {
      expect(alive(p.pid), `${p.what} (pid ${p.pid}) still running`).toBe(false)
    }
    expect(doc.kept).toBe(false)
    expect(existsSync(doc.tempDir)).toBe(false)
  }, 300_000)

  it('--help prints the usage; a bad flag is a usage error', async () => {
    const [help, bad] = await Promise.all([runDemo(['--help']), runDemo(['--sealer', 'quantum'])])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('usage: pnpm demo')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('error[USAGE]')
  })
})
