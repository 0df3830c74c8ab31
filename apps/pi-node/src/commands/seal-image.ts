/** `pi-node seal-image <oci-layout|docker-archive>`: seal an image capsule, register and announce it. */
import { parseReceiver } from '@digicap/capsule-core/light'
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
  description: `Encrypts every layer as containers/ocicrypt does, to a key only a granted executor gets;
adds the blobs to the blockstore serve provides; seals --input (mounted at /digicap/input) with
the manifest digest as the commitment; registers and announces the capsule. Executors run it
under runc (\`executor-node run <cid>\`). The image's label org.digicap.result says where the
result is: stdout (default) or file:/digicap/output/<name>.`,
  args: [{ name: 'image', help: 'an OCI image layout directory or a docker-archive tar' }],
  flags: {
    policy: valueFlag("'<expr>'", 'unlock rule, as for seal'),
    input: valueFlag('<file>', 'the data the container reads at /digicap/input'),
    ref: valueFlag('<name>', 'which image of the layout (its ref name)'),
    receiver: listFlag('<x25519hex>[@peerId]', 'result receiver', { parse: parseReceiver }),
    'memory-mb': valueFlag('<n>', 'container memory limit', { parse: positiveInteger }),
    'time-ms': valueFlag('<n>', 'container time limit', { parse: positiveInteger }),
  },
  async run(ctx) {
    const { flags, args, io } = ctx
    const config = await configOf(ctx)
    if (!flags.policy)
      throw new UsageError('seal-image needs --policy', { hint: `e.g. --policy "maxRuns(3)"` })
    const pi = await openPiNode(ctx, config)
    const bar = progressReporter(io)
    const [memoryMb, timeMs] = [flags['memory-mb'], flags['time-ms']]
    const result = await pi
      .seal({
        ...{ file: flags.input ?? '', image: args.image, policy: flags.policy, runtime: 'oci' },
        ...(flags.ref ? { ref: flags.ref } : {}),
        receivers: flags.receiver ?? [],
        ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
        ...(timeMs !== undefined ? { timeLimit: timeMs } : {}),
        onProgress: bar.update,
      })
      .finally(bar.finish)
    const { sealResultText } = await import('@digicap/owner/node')
    ctx.result({ ...result }, sealResultText(`image ${args.image}`, result))
  },
})
