/** `pi-node serve`: the daemon (helia + the keyguard on one libp2p node). */
import {
  definedFields,
  listFlag,
  positiveInteger,
  switchFlag,
  valueFlag,
  wholeNumber,
} from '@digicap/cli-kit'
import { opsOptionsOf, PI_NODE_OPS_FLAGS } from '@digicap/ops/flags'
import { rpcProviderWarnings } from '@digicap/ops/rpc-providers'
import { command, configOf, dataDirOf, loggerOf, openPiNode } from './shared.ts'

export const serve = command({
  name: 'serve',
  summary: 'run the daemon',
  description: `Runs the daemon on one libp2p node with the owner's identity:
  - helia: provides the on-disk blockstore over bitswap, pins stored capsules, hears
    capsule announcements;
  - the keyguard: watches AccessGranted on the AccessController (confirmations deep),
    pushes each grant's data key HPKE-sealed to the executor's registered peer id,
    journals releases (<data-dir>/keyguard/journal) and re-serves unfinished ones on
    start; answers signed AccessRequests on the fast path (unless disabled).
Writes <data-dir>/serve.json (pid, peer id, addresses, keyguard status), refreshed
every few seconds and after each keyguard event; \`pi-node status\` reads it.
SIGINT/SIGTERM stop it cleanly. With --json, prints one ready document.`,
  flags: {
    listen: listFlag('<multiaddr>', 'listen address (env DIGICAP_LISTEN; default from config)'),
    announce: listFlag('<multiaddr>', 'public address to advertise (env DIGICAP_ANNOUNCE)'),
    confirmations: valueFlag('<n>', 'override keyguard.confirmations (env DIGICAP_CONFIRMATIONS)', {
      parse: wholeNumber,
    }),
    'disable-fast-path': switchFlag('serve the chain path only'),
    'status-interval-ms': valueFlag('<n>', 'serve.json refresh period (default 5000)', {
      parse: positiveInteger,
    }),
    ...PI_NODE_OPS_FLAGS,
  },
  async run(ctx) {
    const { flags } = ctx
    const loaded = await configOf(ctx)
    for (const w of rpcProviderWarnings(loaded)) ctx.io.stderr.write(`WARNING: ${w.line}\n`)
    const pi = await openPiNode(ctx, {
      ...loaded,
      ...definedFields({ listen: flags.listen, announce: flags.announce }),
    })
    const running = await pi.serve({
      ...definedFields({ confirmations: flags.confirmations }),
      ...(flags['disable-fast-path'] ? { fastPath: false } : {}),
      ...definedFields({ statusIntervalMs: flags['status-interval-ms'] }),
    })
    const { packageVersion, startPiNodeOps } = await import('@digicap/ops')
    const { keyguardStatusText } = await import('@digicap/owner/node/light')
    const ops = await startPiNodeOps(
      pi,
      { ...running, peers: () => running.node.libp2p.getPeers().length },
      {
        dataDir: dataDirOf(ctx),
        version: packageVersion(import.meta.url, '@digicap/pi-node'),
        ...opsOptionsOf(flags),
        env: ctx.env,
        logger: loggerOf(ctx),
      },
    ).catch(async (err) => {
      await running.stop()
      throw err
    })
    const kg = await running.keyguard.status()
    const addrs = running.multiaddrs()
    ctx.result(
      {
        peerId: running.peerId,
        multiaddrs: addrs,
        pid: process.pid,
        pinned: running.pinned,
        keyguard: kg,
        ...(ops.url ? { ops: { url: ops.url } } : {}),
      },
      `pi-node serving as ${running.peerId}\n${addrs.map((m) => `  ${m}\n`).join('')}${keyguardStatusText(kg)}` +
        (ops.url
          ? `  ops         ${ops.url}/metrics, /healthz, /status (token: pi-node status)\n`
          : ''),
    )
    await ops.ready(`serving as ${running.peerId}`)
    const signal = await ctx.waitForStop()
    loggerOf(ctx).info('stopping', { signal })
    await ops.stop()
    await running.stop()
  },
})
