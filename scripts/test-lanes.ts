/**
 * CI's test step: every package's `test` task through turbo, two at a time, the longest first.
 *
 * `turbo run test --concurrency=2` (what `pnpm test` runs) has no priorities: a test starts when
 * turbo's graph walk reaches it, and the builds it waits for (cache hits, replayed) take the same
 * two slots as the tests. So the packages at the top of the graph start last, whatever they
 * cost: on CI (run 1228) the demo's 65 s started once pi-node's 182 s had ended, while the other
 * lane had been idle for 3 minutes. Longest-first on two lanes ends both within seconds of each
 * other.
 *
 * Each package still runs as `turbo run test --only --filter=<package>` (the same task, its env
 * passthrough and its cache; its lines prefixed `<package>:test:`), after one `turbo run build`.
 * Every package runs even when one fails; the exit code is 1 if any failed. The last lines give
 * each package's time: update SECONDS from them when the order drifts far from them.
 *
 * `node scripts/test-lanes.ts [package...]` (all of them by default; DIGICAP_TEST_LANES=n for
 * another number of lanes).
 */
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { stripVTControlCharacters } from 'node:util'

/**
 * Each package's test task on CI (2 cores, two at a time), in seconds; new packages go first.
 * The seven longest from CI's test-lanes lines of 2026-12-07 (midpoints), the rest older;
 * keyguard is its 411 s halved as on the shared box (806 s -> 402 s) once its files ran in one
 * worker.
 */
const SECONDS: Record<string, number> = {
  '@digicap/executor': 396,
  '@digicap/pi-node': 232,
  '@digicap/keyguard': 205,
  '@digicap/p2p': 163,
  '@digicap/executor-node': 148,
  '@digicap/committee': 121,
  '@digicap/contracts': 102,
  '@digicap/attestation': 77,
  '@digicap/demo': 65,
  '@digicap/sdk': 54,
  '@digicap/capsule-core': 49,
  '@digicap/owner': 34,
  '@digicap/protocol': 31,
  '@digicap/oci': 22,
  '@digicap/ops': 19,
  '@digicap/cli-kit': 13,
  '@digicap/tpm': 3,
  '@digicap/vrf': 3,
}

const root = join(import.meta.dirname, '..')
const turbo = join(root, 'node_modules', '.bin', 'turbo')
const lanes = Number(process.env.DIGICAP_TEST_LANES ?? 2)

/** Every workspace package's name and whether it has a `test` script. */
function workspacePackages(): { name: string; tested: boolean }[] {
  const found: { name: string; tested: boolean }[] = []
  for (const dir of ['packages', 'apps']) {
    for (const entry of readdirSync(join(root, dir))) {
      const file = join(root, dir, entry, 'package.json')
      if (!existsSync(file)) continue
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as {
        name: string
        scripts?: Record<string, string>
      }
      found.push({ name: pkg.name, tested: pkg.scripts?.test !== undefined })
    }
  }
  return found
}

/** The packages to test (those named, or all), the longest first. */
function testedPackages(named: string[]): string[] {
  const names = workspacePackages()
    .filter((p) => p.tested && (named.length === 0 || named.includes(p.name)))
    .map((p) => p.name)
  const cost = (name: string) => SECONDS[name] ?? Number.POSITIVE_INFINITY
  return names.sort((a, b) => cost(b) - cost(a) || a.localeCompare(b))
}

/** The turbo runs going on: stopped with this script, so a killed CI leaves no suite running. */
const running = new Set<ReturnType<typeof spawn>>()
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill(signal)
    process.exit(128 + (signal === 'SIGHUP' ? 1 : signal === 'SIGINT' ? 2 : 15))
  })
}

/**
 * Runs turbo with `args`, its output copied line by line (two lanes never split a line) and
 * handed to `seen` too.
 */
function runTurbo(args: string[], seen?: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(turbo, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
        process.stdout.write(`${line}\n`)
        seen?.(line)
      })
    }
    child.on('error', (err) => {
      process.stdout.write(`test-lanes: ${turbo}: ${err.message}\n`)
      resolve(1)
    })
    child.on('close', (code) => {
      running.delete(child)
      resolve(code ?? 1)
    })
  })
}

const named = process.argv.slice(2)
const known = new Set(workspacePackages().map((p) => p.name))
const unknown = named.filter((a) => !known.has(a))
if (unknown.length > 0) {
  process.stderr.write(
    `test-lanes: not a package: ${unknown.join(' ')}\nhint: name packages (\`pnpm test @digicap/keyguard\`), or run turbo itself: \`pnpm turbo run test --filter=<package>\`\n`,
  )
  process.exit(2)
}

const started = Date.now()
if ((await runTurbo(['run', 'build', '--output-logs=errors-only'])) !== 0) process.exit(1)

/** The most lines of one failed package's failures repeated at the end. */
const FAILURE_LINES = 150

/**
 * What a failed package's vitest said of its failures: the failed tests (`×`/`FAIL` lines) and
 * the "Failed Tests" / "Errors" sections with their stacks, at most FAILURE_LINES. Repeated after
 * every lane has ended, so the tail of a long CI log (often all that is kept of it) says why,
 * not only which package.
 */
function failureLines(lines: readonly string[], max = FAILURE_LINES): string[] {
  const out: string[] = []
  let inSection = false
  for (const line of lines) {
    const text = stripVTControlCharacters(line)
    if (/⎯{3,} (Failed Tests|Unhandled Errors?|Failed Suites)/.test(text)) inSection = true
    else if (/^\S*\s*Test Files\s/.test(text.replace(/^[^:]+:test:/, '').trim())) inSection = false
    if (inSection || /\s(×|✗|FAIL)\s/.test(text)) out.push(text)
    if (out.length >= max) {
      out.push(`… (cut at ${max} lines; the whole output is above)`)
      break
    }
  }
  return out
}

const queue = testedPackages(named)
const results: { name: string; seconds: number; code: number; lines: string[] }[] = []
async function lane(): Promise<void> {
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    const t0 = Date.now()
    const lines: string[] = []
    const code = await runTurbo(['run', 'test', '--only', `--filter=${name}`], (line) =>
      lines.push(line),
    )
    results.push({ name, seconds: Math.round((Date.now() - t0) / 1000), code, lines })
  }
}
await Promise.all(Array.from({ length: Math.max(1, lanes) }, lane))

const failed = results.filter((r) => r.code !== 0)
for (const r of failed) {
  process.stdout.write(`\ntest-lanes: ${r.name} failed; what its tests said of it:\n`)
  for (const line of failureLines(r.lines)) process.stdout.write(`${line}\n`)
}
process.stdout.write(
  `\ntest-lanes: ${results.length} packages on ${lanes} lanes in ${Math.round((Date.now() - started) / 1000)} s\n`,
)
for (const r of results.sort((a, b) => b.seconds - a.seconds)) {
  process.stdout.write(`test-lanes:   ${r.name} ${r.seconds} s${r.code === 0 ? '' : ' FAILED'}\n`)
}
if (failed.length > 0) {
  process.stdout.write(`test-lanes: FAILED: ${failed.map((r) => r.name).join(', ')}\n`)
  process.exit(1)
}
