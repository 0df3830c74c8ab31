/** `pi-node init`: the TPM wrapping key, the owner and the config. */
import {
  contractFlags,
  contractsOf,
  definedFields,
  keyBindingFlags,
  listFlag,
  mnemonicBanner,
  positiveInteger,
  switchFlag,
  UsageError,
  valueFlag,
  wholeNumber,
} from '@digicap/cli-kit'
import type { SealerConfig } from '@digicap/owner/node'
import { appRoot, command, commandLogger, dataDirOf, SEALER_FLAGS } from './shared.ts'

export const init = command({
  name: 'init',
  summary: 'create the owner, TPM key and config',
  description: `Creates the TPM wrapping key, the owner (24-word mnemonic, Ethereum account, recovery key,
libp2p identity) and <data-dir>/config.json. The mnemonic is shown ONCE on stderr.`,
  flags: {
    'rpc-url': valueFlag('<url>', 'chain RPC', {
      env: 'DIGICAP_RPC_URL',
      default: 'http://127.0.0.1:8545',
    }),
    'chain-id': valueFlag('<n>', 'expected chain id (default: asked from the RPC)', {
      parse: positiveInteger,
    }),
    deploy: switchFlag(
      'deploy the Digicap contracts (dev chain: funds the owner and the\nkeyguard operator with anvil_setBalance)',
    ),
    ...contractFlags('existing contracts (instead of --deploy), all three'),
    ...SEALER_FLAGS,
    ...keyBindingFlags(),
    listen: listFlag('<multiaddr>', "serve's listen address (default /ip4/0.0.0.0/tcp/4001)"),
    announce: listFlag('<multiaddr>', 'public address serve advertises (NAT/port forward)'),
    bootstrap: listFlag('<multiaddr>', 'peer to dial at start'),
    'extra-rpc-url': listFlag('<url>', "another RPC of the same chain for the keyguard's quorum"),
    quorum: valueFlag('<n>', 'RPCs that must agree on a grant (default: majority)', {
      parse: positiveInteger,
    }),
    confirmations: valueFlag(
      '<n>',
      'blocks a grant must be buried under (default 0 on 31337/1337, else 3)',
      { parse: wholeNumber },
    ),
    'disable-fast-path': switchFlag(
      'do not answer signed AccessRequests over libp2p (chain path only)',
    ),
    force: switchFlag("move an existing node's config and owner file aside"),
    'show-mnemonic-in-json': switchFlag(
      'with --json: put the mnemonic in the JSON document instead of stderr',
    ),
  },
  async run(ctx) {
    const { flags, io, json } = ctx
    const contracts = contractsOf(flags)
    if (flags.deploy && contracts)
      throw new UsageError('Give --deploy or the contract addresses, not both')
    if (!flags.deploy && contracts === undefined) {
      throw new UsageError('init needs --deploy or all three contract addresses', {
        hint: 'Pass --capsule-registry, --node-registry and --access-controller, or --deploy on a dev chain.',
      })
    }
    const dataDir = dataDirOf(ctx)
    const o = await import('@digicap/owner/node')
    const { 'release-manifest': manifest, 'release-key': key, 'release-root': root } = flags
    const release = await o.pinRelease({ manifest, key, root }, appRoot())
    const choice = o.sealerChoiceOf(flags, ctx.env)
    // Bound to the verified release by default (ADR 0036); --no-pcr-policy opts out.
    const pcrs = o.defaultPolicyPcrs(o.sealerConfigOf(choice, dataDir) as SealerConfig, release, {
      pcrs: flags['pcr-policy'],
      none: flags['no-pcr-policy'],
    })
    const sealer = o.sealerConfigOf({ ...choice, pcrs }, dataDir) as SealerConfig
    // A key bound to the release PCR: measured now (as `verify-install --measure` at each start).
    await o.measureInstalledRelease(sealer, release)
    const keyguard = {
      ...definedFields({ confirmations: flags.confirmations, ekRoots: ctx.env.DIGICAP_EK_ROOTS }),
      ...(flags['disable-fast-path'] ? { fastPath: false } : {}),
    }
    const result = await o.initOwnerNode(
      {
        dataDir,
        rpcUrl: flags['rpc-url'],
        sealer,
        deploy: flags.deploy,
        ...definedFields({ chainId: flags['chain-id'], contracts, release, quorum: flags.quorum }),
        ...definedFields({ listen: flags.listen, bootstrap: flags.bootstrap }),
        ...definedFields({ announce: flags.announce, rpcUrls: flags['extra-rpc-url'] }),
        ...(Object.keys(keyguard).length > 0 ? { keyguard } : {}),
        force: flags.force,
      },
      { logger: commandLogger(io) },
    )
    const mnemonicInJson = json && flags['show-mnemonic-in-json']
    if (!mnemonicInJson) {
      const warning =
        'Anyone with these words controls your capsules. Never store them on this device.'
      io.stderr.write(mnemonicBanner(result.mnemonic, warning))
    }
    if (result.operator.warning) io.stderr.write(`WARNING: ${result.operator.warning}\n`)
    const { owner, operator, sealer: s, config } = result
    ctx.result(
      {
        dataDir,
        owner,
        operator,
        sealer: s,
        chainId: config.chainId,
        contracts: config.contracts,
        deployed: result.deployed,
        ...(mnemonicInJson ? { mnemonic: result.mnemonic } : {}),
      },
      o.initResultText(dataDir, result),
    )
  },
})
