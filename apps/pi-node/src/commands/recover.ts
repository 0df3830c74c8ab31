/** `pi-node recover < words.txt`: the owner back onto a new TPM or a new Pi. */
import {
  contractFlags,
  contractsOf,
  definedFields,
  EXIT,
  keyBindingFlags,
  listFlag,
  NotInitialisedError,
  positiveInteger,
  readStdinText,
  UsageError,
  valueFlag,
  wholeNumber,
} from '@digicap/cli-kit'
import { appRoot, command, commandLogger, configOf, dataDirOf, SEALER_FLAGS } from './shared.ts'

const NEW_PI = 'New Pi (no config in the data folder)'

export const recover = command({
  name: 'recover',
  summary: 'restore keys onto a new TPM from the paper mnemonic (stdin)',
  usage: '[options] < words.txt',
  description: `Reads the 24-word mnemonic from stdin (never from the command line) and brings the owner
back onto a new TPM, or onto a new Pi with an empty data folder: writes the config and the
owner file again, re-wraps the keys still stored here, then rebuilds every key of the
owner's capsules from the chain (CapsuleRegistered logs) and IPFS (the header's recovery
copy), points the chain's keyguard record at the new TPM key (updateKeyguard) and pins the
capsules. Safe to run again after a crash. Capsules that cannot be recovered are listed
with a reason (exit code 1); the others are recovered.`,
  flags: {
    ...SEALER_FLAGS,
    tcti: valueFlag('<tcti>', 'the new TPM (saved to the config)'),
    sealer: valueFlag('tpm2|software', 'switch sealer kind (saved to the config)', {
      choices: ['tpm2', 'software'],
    }),
    peer: listFlag(
      '<multiaddr>',
      "a peer serving the capsules' blocks (an executor, a pinning\nnode), with /p2p/<peerId>; saved as bootstrap",
    ),
    'start-block': valueFlag(
      '<n>',
      "first block to scan for the owner's capsules (default: the\nconfig's, else 0)",
      { parse: wholeNumber },
    ),
    'fetch-timeout-ms': valueFlag('<ms>', 'per-capsule fetch timeout (default 60000)', {
      parse: positiveInteger,
    }),
    'rpc-url': valueFlag('<url>', 'chain RPC', { env: 'DIGICAP_RPC_URL', group: NEW_PI }),
    'chain-id': valueFlag('<id>', 'expected chain id', { parse: positiveInteger, group: NEW_PI }),
    ...contractFlags('the contracts, as given to init', { group: NEW_PI }),
    listen: listFlag('<multiaddr>', 'saved in the new config (default /ip4/0.0.0.0/tcp/4001)', {
      group: NEW_PI,
    }),
    // A new Pi gets a new key, bound as init binds it (ADR 0036, 0089).
    ...keyBindingFlags(NEW_PI),
  },
  async run(ctx) {
    const { flags, io } = ctx
    const mnemonic = await readStdinText(io.stdin)
    if (!mnemonic) {
      throw new UsageError('recover reads the mnemonic from stdin; got nothing', {
        hint: 'pi-node recover < words.txt (or type the words and press Ctrl-D).',
      })
    }
    const dataDir = dataDirOf(ctx)
    // No config: a new Pi. A config that cannot be read (malformed, unsafe folder) fails here.
    const existing = await configOf(ctx).catch((err: unknown) => {
      if (err instanceof NotInitialisedError) return undefined
      throw err
    })
    const o = await import('@digicap/owner/node')
    const choice = o.sealerChoiceOf(flags, ctx.env, existing !== undefined)
    // A new Pi's key is bound as init binds it; a re-run keeps the config's (ADR 0089).
    const { sealer, release } = await o.recoverSealerSetup(
      existing,
      o.sealerConfigOf(choice, dataDir, existing?.sealer),
      flags,
      appRoot(),
    )
    const contracts = contractsOf(flags)
    const result = await o.recoverOwnerNode(
      {
        dataDir,
        mnemonic,
        ...definedFields({ sealer, release, rpcUrl: flags['rpc-url'], chainId: flags['chain-id'] }),
        ...definedFields({ contracts, peers: flags.peer, listen: flags.listen }),
        ...definedFields({ startBlock: flags['start-block'], ekRoots: ctx.env.DIGICAP_EK_ROOTS }),
        ...definedFields({ fetchTimeoutMs: flags['fetch-timeout-ms'] }),
        onProgress: (phase, done, total) => io.stderr.write(`${phase} ${done}/${total}\n`),
      },
      { logger: commandLogger(io) },
    )
    ctx.result({ ...result }, o.recoverResultText(result))
    return result.failed.length > 0 ? EXIT.failure : EXIT.ok
  },
})
