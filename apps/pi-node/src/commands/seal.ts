/** `pi-node seal <file>`: seal, store, register and announce a capsule. */
import { parseReceiver, warmFileLanes } from '@digicap/capsule-core/light'
import {
  definedFields,
  listFlag,
  positiveInteger,
  progressReporter,
  switchFlag,
  UsageError,
  valueFlag,
} from '@digicap/cli-kit'
import { POLICY_EXPRESSION_HELP } from '@digicap/contracts/policy-help'
import { command, configOf, dataDirOf, openPiNode } from './shared.ts'

export const seal = command({
  name: 'seal',
  summary: 'seal a file into a capsule, register and announce it',
  usage: `<file> --policy '<expr>' [options]`,
  description: `Seals <file> into a capsule: data key -> header signed by the owner -> encrypted stream
-> data key wrapped to the TPM and the recovery key -> policy contract deployed -> added
to the on-disk IPFS blockstore -> registered on chain -> announced (if serve is running).`,
  args: [{ name: 'file', help: 'the file to seal' }],
  flags: {
    policy: valueFlag("'<expr>'", 'unlock rule (policy builder expression), see below'),
    runtime: valueFlag('data|quickjs|wasi', 'what the capsule holds', {
      choices: ['data', 'quickjs', 'wasi'],
      default: 'data',
    }),
    entry: valueFlag('<name>', 'code capsules: the entry file of the bundle'),
    code: valueFlag(
      '<path>',
      'code capsules: the plaintext is the executor bundle\n{entry, files, data = <file>}; --code is one file (stored as\n<name>) or a folder (every file by relative path)',
    ),
    receiver: listFlag('<x25519hex>[@peerId]', 'result receiver', { parse: parseReceiver }),
    'memory-mb': valueFlag('<n>', 'sandbox memory limit', { parse: positiveInteger }),
    'time-ms': valueFlag('<n>', 'sandbox time limit', { parse: positiveInteger }),
    'announce-timeout-ms': valueFlag('<n>', 'wait for a gossipsub subscriber (default 5000)', {
      parse: positiveInteger,
    }),
    'no-daemon': switchFlag('seal in this process even when serve runs'),
  },
  epilog: `${POLICY_EXPRESSION_HELP}

Examples:
  pi-node seal photo.jpg --policy 'maxRuns(1)'
  pi-node seal data.csv --policy 'minReputation(50)' --runtime quickjs --entry main.js --code ./app`,
  async run(ctx) {
    const { flags, args, io } = ctx
    const bar = progressReporter(io)
    const memoryMb = flags['memory-mb']
    const options = {
      file: args.file,
      policy: flags.policy ?? '',
      runtime: flags.runtime,
      receivers: flags.receiver ?? [],
      ...definedFields({ entry: flags.entry, code: flags.code, timeLimit: flags['time-ms'] }),
      ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
      ...definedFields({ announceTimeoutMs: flags['announce-timeout-ms'] }),
      onProgress: bar.update,
    }
    const { sealResultText, sealViaDaemon } = await import('@digicap/owner/node/light')
    // A data seal goes to the running `serve`, if any: no second node (ADR 0107).
    const handed = flags['no-daemon']
      ? undefined
      : await sealViaDaemon(dataDirOf(ctx), options).finally(bar.finish)
    // The seal's worker threads boot while the configuration and keys load (ADR 0104).
    if (!handed) warmFileLanes({ file: args.file })
    // An uninitialised folder is reported before a missing --policy, as it always was.
    const config = handed ? undefined : await configOf(ctx)
    if (!flags.policy)
      throw new UsageError('seal needs --policy', { hint: `e.g. --policy "maxRuns(3)"` })
    const result =
      handed ?? (await (await openPiNode(ctx, config)).seal(options).finally(bar.finish))
    ctx.result({ ...result }, sealResultText(args.file, result))
  },
})
