/**
 * The demo's image capsule step (issue #19): a container image — Debian's static busybox plus
 * a shell script that aggregates the CSV mounted at /digicap/input — sealed by `pi-node
 * seal-image` (every layer encrypted to a key only a granted executor gets, blobs in the
 * pi-node's blockstore), pulled, granted and run under runc by `executor-node run` (`--oci`),
 * the result HPKE-sealed to the receiver; a second run the policy refuses (maxRuns(1)) gets no
 * key, so no layer is ever opened. Both runs go through one `executor-node serve` on the
 * executor's data folder (its run.sock): one node start instead of two, the runs' CLIs load no
 * libp2p, helia or ethers (ADR 0043: the step's start-ups were most of its time). Needs root, runc, umoci and busybox-static: without them the
 * step is skipped with a warning (the rest of the demo does not need them).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { collectOutput } from '@digicap/cli-kit'
import { buildBusyboxImage } from '../../../packages/oci/test/busybox-image.ts'
import type { Doc, StepContext } from './step-context.ts'

/** Sums, min and max of the salary column, as JSON on stdout (busybox awk). */
export const AGGREGATE_SCRIPT = `#!/bin/sh
awk -F, 'NR == 1 || NF == 0 { next }
{ n++; s += $3; if (n == 1 || $3 < lo) lo = $3; if (n == 1 || $3 > hi) hi = $3 }
END { printf "{\\"rows\\":%d,\\"column\\":\\"salary_eur\\",\\"sum\\":%d,\\"min\\":%d,\\"max\\":%d}\\n", n, s, lo, hi }' /digicap/input
`

/** The image step's own inputs, beside the demo's {@link StepContext}. */
export interface ImageStepInputs {
  piEnv: Record<string, string>
  /** `--data-dir …`, `--keyguard-addr …` of the executor's runs. */
  executorArgs: string[]
  /** The runs' environment (the receiver as bootstrap peer). */
  runEnv: Record<string, string>
  /** The demo's policy terms the image capsule adds `maxRuns(1)` to. */
  policyTerms: string[]
  receiver: { publicKey: string; peerId: string; next(ms: number): Promise<Doc> }
  runCount(capsuleId: string): Promise<bigint>
}

type Ctx = StepContext & ImageStepInputs

export interface ImageStepOutcome {
  skipped?: string
  capsule?: { cid: string; capsuleId: string; policy: string }
  result?: Doc
  receivedVia?: string
  /** The run's stages (ms): CLI start-up, the executor's stages, the CLI's stop, the refusal. */
  steps?: Record<string, number>
  refusal?: { code: string; reason: string; keyReleased: boolean }
}

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (runc needs cgroups and mounts)'
  if (!existsSync('/bin/busybox')) return 'no /bin/busybox (apt install busybox-static)'
  for (const tool of ['runc', 'umoci']) {
    const found = (process.env.PATH ?? '')
      .split(':')
      .some((dir) => dir.length > 0 && existsSync(`${dir}/${tool}`))
    if (!found) return `no ${tool} on PATH (apt install ${tool})`
  }
  return undefined
}

/**
 * Starts sealing the image capsule at once (it overlaps the demo's data capsule runs: the
 * pi-node's work, not the executor's); `run()` runs it when the caller is ready.
 */
export function imageStep(ctx: Ctx): { run(): Promise<ImageStepOutcome> } {
  const lacking = missing()
  if (lacking) {
    ctx.warn(`image capsule step skipped: ${lacking}`)
    return { run: async () => ({ skipped: lacking }) }
  }
  const policy = `all(${[...ctx.policyTerms, 'maxRuns(1)'].join(', ')})`
  const sealing = sealImage(ctx, policy)
  sealing.catch(() => {}) // awaited by run()
  return { run: async () => runImage(ctx, policy, await sealing) }
}

async function sealImage(ctx: Ctx, policy: string): Promise<Doc> {
  const image = await buildBusyboxImage({
    files: { 'app/aggregate.sh': AGGREGATE_SCRIPT },
    config: { Cmd: ['/bin/sh', '/app/aggregate.sh'] },
  })
  try {
    return await ctx.stage(
      'pi-node',
      'seal-image: busybox + aggregate.sh, salaries.csv as input',
      () =>
        ctx.cliOk(
          ctx.piNode,
          [
            'seal-image',
            image.dir,
            '--policy',
            policy,
            '--input',
            ctx.csv,
            '--receiver',
            `${ctx.receiver.publicKey}@${ctx.receiver.peerId}`,
          ],
          ctx.piEnv,
          'pi-node seal-image',
        ),
      (d) => `${d.cid}, layers encrypted to the capsule key, policy ${policy}`,
    )
  } finally {
    await image.dispose()
  }
}

/** The executor's daemon for the step's runs; `stop()` SIGTERMs it and keeps its logs. */
interface ExecutorDaemon {
  stop(): Promise<void>
}

/**
 * `executor-node serve` on the executor's data folder, resolved once its run.sock listens.
 * Not in a process group of its own: a Ctrl-C of the demo reaches it too.
 */
async function startExecutorDaemon(ctx: Ctx, env: Record<string, string>): Promise<ExecutorDaemon> {
  const dataDir = ctx.executorArgs[ctx.executorArgs.indexOf('--data-dir') + 1] as string
  const level = process.env.DIGICAP_LOG_LEVEL
  const child = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      ctx.executorNode,
      'serve',
      '--data-dir',
      dataDir,
      '--ops-port',
      '0',
      '--json',
    ],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/',
        ...(level ? { DIGICAP_LOG_LEVEL: level } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const { stdout, stderr, exited } = collectOutput(child)
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const late = setTimeout(kill, 15_000)
    await exited
    clearTimeout(late)
    process.removeListener('exit', kill)
    // beside the demo's other logs (<temp>/logs/<what>.{out,err}.log)
    const logs = join(dirname(dataDir), 'logs')
    try {
      mkdirSync(logs, { recursive: true })
      writeFileSync(join(logs, 'executor-node-serve-image.out.log'), stdout(), { flag: 'a' })
      writeFileSync(join(logs, 'executor-node-serve-image.err.log'), stderr(), { flag: 'a' })
    } catch {
      // the temp folder is being removed
    }
  }
  let gone = false
  exited.then(() => {
    gone = true
  })
  try {
    await ctx.until(
      async () => {
        if (gone) throw new Error(`executor-node serve ended at start: ${stderr().slice(-600)}`)
        return stdout().includes('"event":"started"') && existsSync(join(dataDir, 'run.sock'))
      },
      90_000,
      'executor-node serve to listen on run.sock',
    )
  } catch (err) {
    await stop()
    throw err
  }
  return { stop }
}

async function runImage(ctx: Ctx, policy: string, sealed: Doc) {
  const cid = sealed.cid as string
  const capsuleId = sealed.capsuleId as string
  const env = { ...ctx.runEnv, DIGICAP_OCI: '1' }
  const runArgs = ['run', cid, ...ctx.executorArgs, '--fast', '--no-fallback']
  const arrival = ctx.receiver.next(120_000)
  arrival.catch(() => {})
  const t0 = performance.now()
  let stopMs = 0
  const daemon = await ctx.stage(
    'executor',
    'serve: one node for the image runs (they reach it over run.sock)',
    () => startExecutorDaemon(ctx, env),
  )
  let outcome: ImageStepOutcome
  try {
    outcome = await runImageViaDaemon(ctx, { cid, capsuleId, policy, env, runArgs, arrival, t0 })
  } finally {
    const t = performance.now()
    await ctx.stage('executor', 'stop serve (SIGTERM)', () => daemon.stop())
    stopMs = performance.now() - t
  }
  const steps: Record<string, number> = { ...outcome.steps, serveStop: Math.round(stopMs) }
  steps.total = Math.round(performance.now() - t0)
  return { ...outcome, steps }
}

async function runImageViaDaemon(
  ctx: Ctx,
  r: {
    cid: string
    capsuleId: string
    policy: string
    env: Record<string, string>
    runArgs: string[]
    arrival: Promise<Doc>
    t0: number
  },
) {
  const { cid, capsuleId, policy, env, runArgs, arrival } = r
  const t0 = performance.now()
  const serveMs = t0 - r.t0
  const ran = await ctx.stage(
    'executor',
    'run the image capsule: grant → key → pull → decrypt → runc → deliver',
    () => ctx.cliOk(ctx.executorNode, runArgs, env, 'executor-node run (image)'),
    (d) => `${d.path} path, ${d.resultBytes} bytes out`,
  )
  const ranMs = performance.now() - t0
  const got = await ctx.stage(
    'receiver',
    'result of the image run, signature checked, HPKE-opened',
    () => arrival,
    (g) => `${g.output.byteLength} bytes via ${g.via}`,
  )
  if (got.runId !== ran.runId) {
    throw new Error(`the receiver got run ${got.runId}, expected the image run ${ran.runId}`)
  }
  const t1 = performance.now()
  await ctx.until(
    async () => (await ctx.runCount(capsuleId)) >= 1n,
    20_000,
    'the image run counted on chain',
  )
  const t2 = performance.now()
  const refused = await ctx.stage(
    'executor',
    'run the image capsule again: maxRuns(1) refuses, no key',
    async () => {
      const r = await ctx.cli(ctx.executorNode, runArgs, env, 'executor-node run (image, refused)')
      if (r.code === 0) throw new Error('the second image run was granted; maxRuns(1) refuses it')
      const e = r.doc.error as Doc
      return {
        code: String(e.code),
        reason: String(e.details?.reason),
        // the stage lines say whether a key was released (and so a layer opened)
        keyReleased: r.stderr.includes('✓ release'),
      }
    },
    (e) => `${e.code} ${e.reason}, key released: ${e.keyReleased ? 'yes' : 'no'}`,
  )
  const t3 = performance.now()
  const steps: Record<string, number> = {}
  const startup = (ran.startup ?? {}) as Record<string, number>
  for (const k of ['processMs', 'modulesMs', 'nodeMs'] as const) {
    if (typeof startup[k] === 'number') steps[`startup.${k.slice(0, -2)}`] = Math.round(startup[k])
  }
  let stagesMs = 0
  for (const [k, v] of Object.entries(ran.timings as Record<string, number>)) {
    steps[k] = Math.round(v)
    stagesMs += v
  }
  // what the run's CLI spent outside its start-up and stages: stopping its node, exiting
  steps.stop = Math.round(ranMs - (startup.ms ?? 0) - stagesMs)
  steps.receive = Math.round(t1 - t0 - ranMs)
  steps.counted = Math.round(t2 - t1)
  steps.refusal = Math.round(t3 - t2)
  steps.serve = Math.round(serveMs)
  steps.total = Math.round(t3 - r.t0)
  const outcome: ImageStepOutcome = {
    capsule: { cid, capsuleId, policy },
    result: JSON.parse(new TextDecoder().decode(got.output)),
    receivedVia: got.via,
    steps,
    refusal: refused,
  }
  return outcome
}
