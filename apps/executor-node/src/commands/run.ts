/** `executor-node run <cid>`: one capsule, stage by stage. */
import { listFlag, switchFlag, UsageError, valueFlag } from '@digicap/cli-kit'
import type { RunOutputSource } from '@digicap/executor/run-socket'
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
stdout (text) or --out. When \`serve\` runs on the data folder, the run is handed to it over
its socket (run.sock) instead of starting a second node.`,
  args: [{ name: 'cid', help: "the capsule's CID" }],
  flags: {
    fast: switchFlag('keyguard fast path first (env DIGICAP_FAST=1)'),
    'no-fallback': switchFlag('do not fall back to the chain path when the fast path fails'),
    'no-daemon': switchFlag('run on a node of its own even when `serve` runs on the data folder'),
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
    // the CLI's modules, then the node's (one bundle: helia, libp2p, ethers), then the node.
    const processMs = performance.now()
    const { flags, args, io } = ctx
    const light = await import('@digicap/executor/run-socket')
    const options = light.runOptionsOf(flags)
    const progress = light.progressLines((line) => io.stderr.write(line))
    const print = async (r: RunOutputSource, startup: Record<string, unknown>) => {
      const { doc, text } = await light.runOutput(r, { out: flags.out, startup })
      ctx.result(doc, text)
    }
    try {
      // A daemon serving this data folder runs it: no second libp2p node (ADR 0035).
      const daemon = flags['no-daemon']
        ? undefined
        : await light.runViaDaemon(dataDirOf(ctx), args.cid, options, progress)
      if (daemon) return await print(daemon as never, { ms: processMs, processMs, via: 'daemon' })
      const { createExecutorNode } = await import('@digicap/executor/one-shot') // one file (ADR 0052)
      const modulesMs = performance.now() - processMs
      const en = await createExecutorNode(dataDirOf(ctx), ctx.env, {
        ...listenOf(ctx),
        pubsub: false, // nothing here follows announcements (ADR 0042)
        logger: loggerOf(ctx),
      })
      const now = performance.now()
      const startup = { ms: now, processMs, modulesMs, nodeMs: now - processMs - modulesMs }
      try {
        io.stderr.write(light.startLine(args.cid, startup))
        const r = await en.executor.runCapsule(args.cid, { ...options, ...progress })
        await print(r, startup)
        io.stderr.write(light.pendingNote(en.executor.pendingDeliveries()))
      } finally {
        await en.stop()
      }
    } finally {
      progress.stop()
    }
  },
})
