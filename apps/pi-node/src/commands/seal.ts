/** `pi-node seal <file>`: seal, store, register and announce a capsule. */
import { parseReceiver } from '@digicap/capsule-core/light'
import {
  listFlag,
  positiveInteger,
  progressReporter,
  UsageError,
  valueFlag,
} from '@digicap/cli-kit'
import { command, configOf, openPiNode } from './shared.ts'

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
  epilog: `Policy expressions (conditions minReputation(n), allowlist(['0x..', ...]), denylist([...]),
environment('0x<64 hex>'), after(date), before(date), maxRuns(n), fee('0.01'), combined with
all(...), any(...), not(x); hex and dates are quoted; dates ISO 8601 with Z or unix seconds):
  --policy 'maxRuns(3)'                                   at most 3 grants
  --policy 'all(minReputation(50), maxRuns(3))'           reputable executors, 3 runs
  --policy "all(environment('0x<64 hex>'), before('2027-01-01T00:00:00Z'), fee('0.01'))"
  --policy "any(allowlist(['0x<40 hex>', '0x<40 hex>']), minReputation(500))"
  --policy "all(not(denylist(['0x<40 hex>'])), maxRuns(10))"
  (the @digicap/contracts README has the full grammar)

Examples:
  pi-node seal photo.jpg --policy 'maxRuns(1)'
  pi-node seal data.csv --policy 'minReputation(50)' --runtime quickjs --entry main.js --code ./app`,
  async run(ctx) {
    const { flags, args, io } = ctx
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
        ...(flags.entry ? { entry: flags.entry } : {}),
        ...(flags.code ? { code: flags.code } : {}),
        receivers: flags.receiver ?? [],
        ...(memoryMb !== undefined ? { memoryLimit: memoryMb * 1024 * 1024 } : {}),
        ...(flags['time-ms'] !== undefined ? { timeLimit: flags['time-ms'] } : {}),
        ...(flags['announce-timeout-ms'] !== undefined
          ? { announceTimeoutMs: flags['announce-timeout-ms'] }
          : {}),
        onProgress: bar.update,
      })
      .finally(bar.finish)
    ctx.result({ ...result }, sealedText(args.file, result))
  },
})

/** What `seal` and `seal-image` print. */
export function sealedText(
  what: string,
  r: {
    capsuleId: string
    cid: string
    policy: string
    registerTransaction: string
    announced: { ok: boolean; recipients?: number; reason?: string }
  },
): string {
  const a = r.announced
  return `Sealed ${what}\n  capsule id   ${r.capsuleId}\n  CID          ${r.cid}\n  policy       ${r.policy}\n  register tx  ${r.registerTransaction}\n  announced    ${a.ok ? `yes (${a.recipients} peer(s))` : `no (${a.reason}); serve provides it from the blockstore`}\n`
}
