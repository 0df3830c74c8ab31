/** `executor-node receive`: the receiver daemon, printing verified results. */
import { type DigicapError, toHex, x25519PublicKey } from '@digicap/capsule-core'
import { switchFlag, valueFlag } from '@digicap/cli-kit'
import { executorNodePaths } from '../config.ts'
import { command, dataDirOf, listenOf, printable } from './shared.ts'

export const receive = command({
  name: 'receive',
  summary: 'receiver daemon: print results as they arrive',
  usage: '[--key-file <path>] [--once]',
  description: `Receiver daemon: waits for results on /digicap/result/2.0.0 (inline or by IPFS CID). A result
is taken only when it is signed by the executor its grant names on chain (AccessController),
for that grant, capsule and measurement, sealed to this key, and not seen before; each one is
printed with the verified executor address, each refusal with its reason (one JSON line each
under --json). Opens with the X25519 key (default <data-dir>/receiver.key). --once exits after
the first result.`,
  flags: {
    'key-file': valueFlag('<path>', 'the X25519 private key (default <data-dir>/receiver.key)'),
    once: switchFlag('exit after the first result'),
  },
  async run(ctx) {
    const { flags, event: line } = ctx
    const dataDir = dataDirOf(ctx)
    const { createExecutorNode, readReceiverKey } = await import('../executor-node.ts')
    const privateKey = await readReceiverKey(
      flags['key-file'] ?? executorNodePaths(dataDir).receiverKey,
    )
    const en = await createExecutorNode(dataDir, ctx.env, {
      ...listenOf(ctx),
      executor: false,
      attestation: false,
    })
    const receiver = en.receiver(privateKey)
    receiver.events.addEventListener('error', (e) => {
      const err = (e as CustomEvent<DigicapError>).detail
      const d = err.details
      const reason = d.reasonCode ?? err.shortMessage
      line(
        {
          event: 'refused',
          code: err.code,
          reason,
          runId: d.runId,
          grantId: d.grantId,
          from: d.from,
          executor: d.executor,
        },
        `refused result of run ${String(d.runId ?? '?')} from ${String(d.from ?? '?')}: ${String(reason)}${d.executor === undefined ? '' : ` (signed by ${String(d.executor)})`}\n`,
      )
    })
    await receiver.start()
    const publicKey = toHex(x25519PublicKey(privateKey))
    const addresses = en.node.multiaddrs()
    line(
      { event: 'listening', peerId: en.peerId, publicKey, addresses },
      `receiving as ${en.peerId} (key ${publicKey})\n${addresses.map((a) => `  ${a}\n`).join('')}`,
    )
    const stop = ctx.waitForStop()
    try {
      for (;;) {
        const next = receiver.next(24 * 3600 * 1000)
        const r = await Promise.race([next, stop.then(() => undefined)])
        if (!r) break
        const { runId, capsuleId, grantId, executor, from, via } = r
        line(
          {
            event: 'result',
            runId,
            capsuleId,
            grantId,
            executor,
            from,
            via,
            result: printable(r.output),
          },
          `result of run ${runId} from executor ${executor} (verified on chain; peer ${from}, ${via}):\n${printable(r.output)}\n`,
        )
        if (flags.once) break
      }
    } finally {
      await receiver.stop()
      await en.stop()
    }
  },
})
