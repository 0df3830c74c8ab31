/** `pi-node seal <file>`: seal, store, register and announce a capsule. */
import { parseReceiver, warmFileLanes } from '@digicap/capsule-core/light'
import {
  definedFields,
  listFlag,
  positiveInteger,
  progressReporter,
  UsageError,
  valueFlag,
} from '@digicap/cli-kit'
import { command, configOf, openPiNode } from './shared.ts'

/** The policy grammar, as `seal` and `move-policy` take it. */
export const POLICY_HELP = `Policy expressions (conditions minReputation(n), allowlist(['0x..', ...]), denylist([...]),
environment('0x<64 hex>'), after(date), before(date), maxRuns(n), fee('0.01'), combined with
all(...), any(...), not(x); hex and dates are quoted; dates ISO 8601 with Z or unix seconds):
  --policy 'maxRuns(3)'                                   at most 3 grants
  --policy 'all(minReputation(50), maxRuns(3))'           reputable executors, 3 runs
  --policy "all(environment('0x<64 hex>'), before('2027-01-01T00:00:00Z'), fee('0.01'))"
  --policy "any(allowlist(['0x<40 hex>', '0x<40 hex>']), minReputation(500))"
  --policy "all(not(denylist(['0x<40 hex>'])), maxRuns(10))"
  (the @digicap/contracts README has the full grammar)`

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
  },
  epilog: `${POLICY_HELP}

Examples:
  pi-node seal photo.jpg --policy 'maxRuns(1)'
  pi-node seal data.csv --policy 'minReputation(50)' --runtime quickjs --entry main.js --code ./app`,
  async run(ctx) {
    const { flags, args, io } = ctx
    // The seal's worker threads boot while the configuration and keys load (ADR 0104).
    warmFileLanes({ file: args.file })
    // An uninitialised folder is reported before a missing --policy, as it always was.
    const config = await configOf(ctx)
    const policy = flags.policy
    if (!policy) throw new UsageError('seal needs --policy', { hint: `e.g. --policy "maxRuns(3)"` })
    const pi = await openPiNode(ctx, config)
    const bar = progressReporter(io)
    const memoryMb = flags['memory-mb']
    const result = await pi
      .seal({
        file: args.file,
        policy,
        runtime: flags.runtime,
        ...definedFields({ entry: flags.entry, code: flags.code, timeLimit: flags['time-ms'] }),
        receivers: flags.receiver ?? [],
        ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
        ...definedFields({ announceTimeoutMs: flags['announce-timeout-ms'] }),
        onProgress: bar.update,
      })
      .finally(bar.finish)
    const { sealResultText } = await import('@digicap/owner/node')
    ctx.result({ ...result }, sealResultText(args.file, result))
  },
})
