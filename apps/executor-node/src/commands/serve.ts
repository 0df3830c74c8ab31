/** `executor-node serve`: the daemon (key releases, announcements, pending deliveries). */
import { toHex } from '@digicap/capsule-core/light'
import { switchFlag, valueFlag } from '@digicap/cli-kit'
import { OPS_FLAGS, opsOptionsOf } from '@digicap/ops/flags'
import { command, dataDirOf, listenOf, loggerOf } from './shared.ts'

export const serve = command({
  name: 'serve',
  summary: 'daemon: key releases, announcements (--auto-run), pending deliveries',
  usage: '[--auto-run] [--fast] [--role executor|verifier|executor+verifier]',
  description: `Daemon: answers key releases, delivers pending results when receivers connect, and listens
to capsule announcements. With --auto-run it runs each announced capsule of this chain and
registry once (the policy decides; a refusal is printed, not fatal). Without it, announced
capsules are only listed; run one with \`executor-node run <cid>\`. With a TPM in the config
(init --tcti, env DIGICAP_TCTI) it measures each run into PCR 23 and answers
/digicap/attest/1.0.0 challenges with a quote and the attestation record. It does not reset
PCR 23: after a crashed run it says so (event run-pcr-not-reset) and runs are refused until
--reset-run-pcr (or \`executor-node reset-run-pcr\`) resets it. --role verifier (or executor+verifier)
attests other executors' jobs in committees (config settlement.*), each vote signed once per slot
across restarts (<data-dir>/signed-votes.json, made by init). Stops on SIGINT/SIGTERM.`,
  flags: {
    'auto-run': switchFlag('run each announced capsule once'),
    fast: switchFlag('auto-runs take the keyguard fast path first'),
    'reset-run-pcr': switchFlag('reset PCR 23 first (after a crashed run; prints what it held)'),
    role: valueFlag('<role>', 'executor, verifier or executor+verifier', { default: 'executor' }),
    'new-vote-record': switchFlag('make a missing signed-vote record (no votes elsewhere)'),
    ...OPS_FLAGS,
  },
  async run(ctx) {
    const { flags, event: line } = ctx
    // Listen for SIGTERM from the start: one during start-up stops the daemon once it is up.
    const stopped = ctx.waitForStop()
    const [
      { followAnnouncements, loadConfig, runPcrAtStart, startedLine, startServeRole },
      { createExecutorNode },
      { createProvider },
      { packageVersion, startExecutorOps },
      { openRunSocket },
    ] = await Promise.all([
      import('@digicap/executor/node'),
      import('../executor-node.ts'),
      import('@digicap/contracts'),
      import('@digicap/ops'),
      import('@digicap/executor/run-socket'),
    ])
    const logger = loggerOf(ctx)
    // Config errors first; then the run socket's folder lock: no second node with this peer id.
    await loadConfig(dataDirOf(ctx), ctx.env)
    const sock = await openRunSocket({
      dataDir: dataDirOf(ctx),
      onEvent: (e) => line(e.doc, e.text),
    })
    const options = { ...listenOf(ctx), logger }
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, options).catch(sock.abandon)
    const onLine: Parameters<typeof startServeRole>[2] = (l) => line(l.doc, l.text)
    const roleInit = { newVoteRecord: flags['new-vote-record'] }
    const stopRole = await startServeRole(en, flags.role, onLine, {}, roleInit).catch((err) =>
      en.stop().then(() => sock.abandon(err)),
    )
    const provider = createProvider(en.config.rpcUrl, en.config.chainId)
    const ops = await startExecutorOps(
      () => en.node.libp2p.getPeers().length,
      () => en.executor.pendingDeliveries(),
      {
        version: packageVersion(import.meta.url, '@digicap/executor-node'),
        ...opsOptionsOf(flags),
        env: ctx.env,
        logger,
        head: () => provider.getBlockNumber(),
      },
    ).catch(async (err) => {
      provider.destroy()
      await en.stop()
      return sock.abandon(err)
    })
    if (en.attestation) {
      const attestationKeyHash = toHex(en.attestation.hash)
      line({ event: 'attesting', attestationKeyHash }, `attesting with key ${attestationKeyHash}\n`)
      const pcr = await runPcrAtStart(en.attestation, { reset: flags['reset-run-pcr'] })
      line(pcr.doc, pcr.text)
    }
    const started = startedLine({ ...en, addresses: en.node.multiaddrs() })
    line(started.doc, started.text)
    const unfollow = followAnnouncements(
      { node: en.node, executor: ops.observe(en.executor), chain: en.chain },
      {
        chainId: en.config.chainId,
        registry: en.config.contracts.capsuleRegistry,
        autoRun: flags['auto-run'],
        runOptions: flags.fast ? { fast: true } : {},
        onLine: ({ doc, text }) => line(doc, text),
      },
    )
    if (ops.url) line({ event: 'ops', url: ops.url }, `ops port ${ops.url} (/metrics, /healthz)\n`)
    sock.ready(ops.observe(en.executor))
    await ops.ready(`serving as ${en.peerId}`)
    const reason = await stopped
    await sock.close() // runs handed over are aborted, and cleaned up before the node stops
    await stopRole()
    await ops.stop()
    provider.destroy()
    await unfollow()
    await en.stop()
    line({ event: 'stopped', reason }, `stopped (${reason})\n`)
  },
})
