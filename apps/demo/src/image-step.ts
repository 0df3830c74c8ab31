/**
 * The demo's image capsule step (issue #19): a container image — Debian's static busybox plus
 * a shell script that aggregates the CSV mounted at /digicap/input — sealed by `pi-node
 * seal-image` (every layer encrypted to a key only a granted executor gets, blobs in the
 * pi-node's blockstore), pulled, granted and run under runc by `executor-node run` (`--oci`),
 * the result HPKE-sealed to the receiver; a second run the policy refuses (maxRuns(1)) gets no
 * key, so no layer is ever opened. Needs root, runc, umoci and busybox-static: without them the
 * step is skipped with a warning (the rest of the demo does not need them).
 */
import { existsSync } from 'node:fs'
import { buildBusyboxImage } from '../../../packages/oci/test/busybox-image.ts'

// biome-ignore lint/suspicious/noExplicitAny: documents parsed from the CLIs' JSON output
type Doc = Record<string, any>
type Actor = 'chain' | 'pi-node' | 'executor' | 'receiver'

/** Sums, min and max of the salary column, as JSON on stdout (busybox awk). */
export const AGGREGATE_SCRIPT = `#!/bin/sh
awk -F, 'NR == 1 || NF == 0 { next }
{ n++; s += $3; if (n == 1 || $3 < lo) lo = $3; if (n == 1 || $3 > hi) hi = $3 }
END { printf "{\\"rows\\":%d,\\"column\\":\\"salary_eur\\",\\"sum\\":%d,\\"min\\":%d,\\"max\\":%d}\\n", n, s, lo, hi }' /digicap/input
`

export interface ImageStepContext {
  stage<T>(
    actor: Actor,
    name: string,
    fn: () => Promise<T>,
    describe?: (value: T) => string | undefined,
  ): Promise<T>
  cli(
    bin: string,
    args: string[],
    env: Record<string, string>,
    what: string,
  ): Promise<{ code: number | null; doc: Doc; stderr: string }>
  cliOk(bin: string, args: string[], env: Record<string, string>, what: string): Promise<Doc>
  piNode: string
  executorNode: string
  piEnv: Record<string, string>
  /** `--data-dir …`, `--keyguard-addr …` of the executor's runs. */
  executorArgs: string[]
  /** The runs' environment (the receiver as bootstrap peer). */
  runEnv: Record<string, string>
  /** The demo's policy terms the image capsule adds `maxRuns(1)` to. */
  policyTerms: string[]
  csv: string
  receiver: { publicKey: string; peerId: string; next(ms: number): Promise<Doc> }
  runCount(capsuleId: string): Promise<bigint>
  until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void>
  warn(text: string): void
}

export interface ImageStepOutcome {
  skipped?: string
  capsule?: { cid: string; capsuleId: string; policy: string }
  result?: Doc
  receivedVia?: string
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
export function imageStep(ctx: ImageStepContext): { run(): Promise<ImageStepOutcome> } {
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

async function sealImage(ctx: ImageStepContext, policy: string): Promise<Doc> {
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

async function runImage(ctx: ImageStepContext, policy: string, sealed: Doc) {
  const cid = sealed.cid as string
  const capsuleId = sealed.capsuleId as string
  const env = { ...ctx.runEnv, DIGICAP_OCI: '1' }
  const runArgs = ['run', cid, ...ctx.executorArgs, '--fast', '--no-fallback']
  const arrival = ctx.receiver.next(120_000)
  arrival.catch(() => {})
  const ran = await ctx.stage(
    'executor',
    'run the image capsule: grant → key → pull → decrypt → runc → deliver',
    () => ctx.cliOk(ctx.executorNode, runArgs, env, 'executor-node run (image)'),
    (d) => `${d.path} path, ${d.resultBytes} bytes out`,
  )
  const got = await ctx.stage(
    'receiver',
    'result of the image run, signature checked, HPKE-opened',
    () => arrival,
    (g) => `${g.output.byteLength} bytes via ${g.via}`,
  )
  if (got.runId !== ran.runId) {
    throw new Error(`the receiver got run ${got.runId}, expected the image run ${ran.runId}`)
  }
  await ctx.until(
    async () => (await ctx.runCount(capsuleId)) >= 1n,
    20_000,
    'the image run counted on chain',
  )
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
  const steps: Record<string, number> = {}
  for (const [k, v] of Object.entries(ran.timings as Record<string, number>)) {
    steps[k] = Math.round(v)
  }
  const outcome: ImageStepOutcome = {
    capsule: { cid, capsuleId, policy },
    result: JSON.parse(new TextDecoder().decode(got.output)),
    receivedVia: got.via,
    steps,
    refusal: refused,
  }
  return outcome
}
