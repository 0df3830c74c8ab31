/** `executor-node run <cid>`: one capsule, stage by stage. */
import { writeFile } from 'node:fs/promises'
import { listFlag, switchFlag, UsageError, valueFlag } from '@digicap/cli-kit'
import { command, dataDirOf, listenOf, loggerOf } from './shared.ts'

/** Wei: any whole number (a bigint; wei amounts pass 2^53). */
function wholeWei(text: string): bigint {
  if (/^[0-9]+$/.test(text)) return BigInt(text)
  throw new UsageError('--fee must be an integer (wei)')
}

/** Seconds, fractions allowed, above 0. */
function seconds(text: string): number {
  if (/^[0-9]+(\.[0-9]+)?$/.test(text) && Number(text) > 0) return Number(text)
  throw new UsageError('--fetch-timeout must be a positive number of seconds', {
    details: { 'fetch-timeout': text },
  })
}

export const run = command({
  name: 'run',
  summary: 'run one capsule, with a stage-by-stage progress display',
  usage: '<cid> [--fast] [--keyguard-addr <multiaddr>] [options]',
  description: `Runs one capsule: fetch -> verify -> grant -> release -> open -> run -> deliver -> clean-up,
one progress line per stage on stderr. The result goes to the header's receivers and to
stdout (text) or --out.`,
  args: [{ name: 'cid', help: "the capsule's CID" }],
  flags: {
    fast: switchFlag('keyguard fast path first (env DIGICAP_FAST=1)'),
    'no-fallback': switchFlag('do not fall back to the chain path when the fast path fails'),
    'keyguard-addr': listFlag('<multiaddr>', 'dial this keyguard first'),
    fee: valueFlag('<wei>', 'value sent with the access request', {
      default: '0',
      parse: wholeWei,
    }),
    arg: listFlag('<text>', 'program argument'),
    out: valueFlag('<file>', 'write the result here instead of stdout'),
    'fetch-timeout': valueFlag(
      '<seconds>',
      'give up when no byte of the capsule arrives for this long\n(config fetchTimeoutMs; default 120)',
      { parse: seconds },
    ),
  },
  async run(ctx) {
    // Start-up, measured from the process's start (performance's time origin): Node's boot and
    // the CLI's modules, then the node's modules (helia, libp2p, ethers, sandboxes), then the node.
    const processMs = performance.now()
    const { flags, args, io } = ctx
    const [{ createExecutorNode }, { progressLines }, { printable }] = await Promise.all([
      import('../executor-node.ts'),
      import('@digicap/executor'),
      import('@digicap/executor/node'),
    ])
    const modulesMs = performance.now() - processMs
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, {
      ...listenOf(ctx),
      logger: loggerOf(ctx),
    })
    const now = performance.now()
    const startup = { ms: now, processMs, modulesMs, nodeMs: now - processMs - modulesMs }
    const progress = progressLines((line) => io.stderr.write(line))
    const timeout = flags['fetch-timeout']
    const ms = (n: number) => n.toFixed(0)
    try {
      io.stderr.write(
        `run ${args.cid}\n  ✓ ${'start'.padEnd(8)} ${ms(now).padStart(6)} ms  process ${ms(processMs)}, modules ${ms(modulesMs)}, node ${ms(startup.nodeMs)}\n`,
      )
      const r = await en.executor.runCapsule(args.cid, {
        ...(flags.fast ? { fast: true } : {}),
        ...(timeout === undefined ? {} : { fetchTimeoutMs: Math.round(timeout * 1000) }),
        fallbackToChain: !flags['no-fallback'],
        keyguardAddrs: flags['keyguard-addr'] ?? [],
        fee: flags.fee,
        args: flags.arg ?? [],
        onStage: progress.onStage,
        onFetchProgress: progress.onFetchProgress,
      })
      if (flags.out) await writeFile(flags.out, r.result, { mode: 0o600 })
      const { runId, capsuleId, grantId, path, deliveries, timings, cleanup } = r
      const result = flags.out ? undefined : printable(r.result)
      const ids = { runId, capsuleId, grantId, path, result, resultBytes: r.result.byteLength }
      ctx.result(
        { ...ids, deliveries, timings, startup, cleanup },
        flags.out ? `result written to ${flags.out}\n` : `${result}\n`,
      )
      const pending = en.executor.pendingDeliveries()
      if (pending > 0) {
        io.stderr.write(
          `  ${pending} result(s) stored on IPFS for offline receivers; \`executor-node serve\` delivers them when they connect\n`,
        )
      }
    } finally {
      progress.stop()
      await en.stop()
    }
  },
})
