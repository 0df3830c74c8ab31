/** `pi-node seal-image <oci-layout|docker-archive>`: seal an image capsule, register and announce it. */
import { parseReceiver } from '@digicap/capsule-core'
import {
  listFlag,
  positiveInteger,
  progressReporter,
  UsageError,
  valueFlag,
} from '@digicap/cli-kit'
import { command, configOf, openPiNode } from './shared.ts'

export const sealImage = command({
  name: 'seal-image',
  summary: 'seal a container image into an image capsule, register and announce it',
  usage: `<oci-layout|docker-archive> --policy '<expr>' [--input <file>] [options]`,
  description: `Seals a container image into an image capsule: data key -> wrapped to the TPM and the
recovery key -> every layer encrypted as containers/ocicrypt does (provider.digicap recipient:
only an executor the policy grants gets the layer keys) -> the encrypted blobs added to the
on-disk IPFS blockstore -> the capsule (image reference + --input, mounted read-only at
/digicap/input) sealed with the manifest digest as its commitment -> policy deployed ->
registered on chain -> announced (if serve is running). An executor runs it under runc with
no network: \`executor-node run <cid>\`. Turn a docker image into an OCI layout with
\`skopeo copy docker-daemon:app:v1 oci:app-oci:v1\`, or pass \`docker save\`'s archive.
The image's config says where the result is: label org.digicap.result = stdout (default)
or file:/digicap/output/<name>. Images asking to run as root, for ports or volumes are refused
at run time.`,
  args: [{ name: 'image', help: 'an OCI image layout directory or a docker-archive tar' }],
  flags: {
    policy: valueFlag(
      "'<expr>'",
      'unlock rule (policy builder expression), see `pi-node seal --help`',
    ),
    input: valueFlag('<file>', 'the data the container reads at /digicap/input'),
    ref: valueFlag('<name>', 'which image of the layout (its ref name)'),
    receiver: listFlag('<x25519hex>[@peerId]', 'result receiver', { parse: parseReceiver }),
    'memory-mb': valueFlag('<n>', 'container memory limit', { parse: positiveInteger }),
    'time-ms': valueFlag('<n>', 'container time limit', { parse: positiveInteger }),
    'announce-timeout-ms': valueFlag('<n>', 'wait for a gossipsub subscriber (default 5000)', {
      parse: positiveInteger,
    }),
  },
  epilog: `Examples:
  pi-node seal-image ./app-oci --input sales.csv --policy 'maxRuns(3)'
  pi-node seal-image app.tar --ref app --policy 'minReputation(50)' --time-ms 60000`,
  async run(ctx) {
    const { flags, args, io } = ctx
    const config = await configOf(ctx)
    const policy = flags.policy
    if (!policy) {
      throw new UsageError('seal-image needs --policy', { hint: `e.g. --policy "maxRuns(3)"` })
    }
    const pi = await openPiNode(ctx, config)
    const bar = progressReporter(io)
    const memoryMb = flags['memory-mb']
    const result = await pi
      .seal({
        file: flags.input ?? '',
        image: args.image,
        ...(flags.ref ? { ref: flags.ref } : {}),
        policy,
        runtime: 'oci',
        receivers: flags.receiver ?? [],
        ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
        ...(flags['time-ms'] !== undefined ? { timeLimit: flags['time-ms'] } : {}),
        ...(flags['announce-timeout-ms'] !== undefined
          ? { announceTimeoutMs: flags['announce-timeout-ms'] }
          : {}),
        onProgress: bar.update,
      })
      .finally(bar.finish)
    const { announced } = result
    ctx.result(
      { ...result },
      `Sealed image ${args.image}\n` +
        `  capsule id   ${result.capsuleId}\n` +
        `  CID          ${result.cid}\n` +
        `  policy       ${result.policy}\n` +
        `  register tx  ${result.registerTransaction}\n` +
        `  announced    ${announced.ok ? `yes (${announced.recipients} peer(s))` : `no (${announced.reason}); serve provides it from the blockstore`}\n`,
    )
  },
})
