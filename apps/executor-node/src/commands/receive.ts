/** `executor-node receive`: the receiver daemon, printing verified results. */
import { toHex } from '@digicap/capsule-core/light'
import { switchFlag, valueFlag } from '@digicap/cli-kit'
import { command, dataDirOf, listenOf } from './shared.ts'

export const receive = command({
  name: 'receive',
  summary: 'receiver daemon: print results as they arrive',
  usage: '[--key-file <path>] [--once]',
  description: `Receiver daemon: waits for results on /digicap/result/2.0.0 (inline or by IPFS CID). A result
is taken only when it is signed by the executor its grant names on chain (AccessController),
for that grant, capsule and measurement, sealed to this key, and not seen before; each one is
printed with the verified executor address, each refusal with its reason (one JSON line each
under --json). Opens with the X25519 key (default: the node's own, sealed in <data-dir>/secrets.json). --once exits after
the first result.`,
  flags: {
    'key-file': valueFlag('<path>', "an X25519 private key file (default: the node's sealed key)"),
    once: switchFlag('exit after the first result'),
  },
  async run(ctx) {
    const { flags, event: line } = ctx
    const dataDir = dataDirOf(ctx)
    const [
      { createExecutorNode, readReceiverKey, readSecrets },
      { loadConfig, receivedLine, refusedLine },
    ] = await Promise.all([import('../executor-node.ts'), import('@digicap/executor/node')])
    const key = flags['key-file']
      ? await readReceiverKey(flags['key-file'])
      : (await readSecrets(await loadConfig(dataDir, ctx.env))).receiverKey
    const listen = listenOf(ctx)
    const en = await createExecutorNode(dataDir, ctx.env, {
      ...listen,
      executor: false,
      attestation: false,
    })
    const receiver = en.receiver(key)
    const print = ({ doc, text }: { doc: Record<string, unknown>; text: string }) => line(doc, text)
    receiver.events.addEventListener('error', (e) => print(refusedLine((e as CustomEvent).detail)))
    await receiver.start()
    const { x25519PublicKey } = await import('@digicap/capsule-core') // curves: not for --help
    const publicKey = toHex(x25519PublicKey(key))
    const addresses = en.node.multiaddrs()
    line(
      { event: 'listening', peerId: en.peerId, publicKey, addresses },
      `receiving as ${en.peerId} (key ${publicKey})\n${addresses.map((a) => `  ${a}\n`).join('')}`,
    )
    const stop = ctx.waitForStop().then(() => undefined)
    try {
      for (;;) {
        const r = await Promise.race([receiver.next(24 * 3600 * 1000), stop])
        if (!r) break
        print(receivedLine(r))
        if (flags.once) break
      }
    } finally {
      await receiver.stop()
      await en.stop()
    }
  },
})
