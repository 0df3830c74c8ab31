/** `executor-node init`: identity, receiver key and config. */
import { readFile } from 'node:fs/promises'
import { address, ConfigError, positiveInteger, UsageError } from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

export const init = command({
  name: 'init',
  summary: 'create identity, receiver key and config',
  usage: '--capsule-registry <a> --node-registry <a> --access-controller <a> [options]',
  description: `Creates the executor's identity (a 24-word BIP-39 mnemonic: Ethereum account + libp2p key)
in <data-dir>/identity.json (0600), a receiver key (X25519) in receiver.key (0600), and
<data-dir>/config.json. A generated mnemonic is shown ONCE on stderr.`,
  flags: {
    'rpc-url': {
      type: 'string',
      value: '<url>',
      help: 'chain RPC',
      env: 'DIGICAP_RPC_URL',
      default: 'http://127.0.0.1:8545',
    },
    'extra-rpc-url': {
      type: 'string',
      multiple: true,
      value: '<url>',
      help: "another RPC of the same chain for the registry checks' quorum\n(env DIGICAP_RPC_URLS, comma list)",
    },
    quorum: {
      type: 'string',
      value: '<n>',
      help: 'RPCs that must agree on a registry read (default: majority)',
      parse: positiveInteger,
    },
    'chain-id': {
      type: 'string',
      value: '<n>',
      help: 'expected chain id (default: asked from the RPC)',
      parse: positiveInteger,
    },
    'capsule-registry': {
      type: 'string',
      value: '<addr>',
      help: 'Digicap contracts',
      parse: address,
    },
    'node-registry': { type: 'string', value: '<addr>', help: '', parse: address },
    'access-controller': { type: 'string', value: '<addr>', help: '', parse: address },
    bootstrap: {
      type: 'string',
      multiple: true,
      value: '<multiaddr>',
      help: 'peer to dial at start',
    },
    'keyguard-addr': {
      type: 'string',
      multiple: true,
      value: '<multiaddr>',
      help: 'keyguard to dial before each run',
    },
    fast: { type: 'boolean', help: 'use the keyguard fast path by default' },
    'mnemonic-file': {
      type: 'string',
      value: '<path>',
      help: 'import these words instead of generating new ones',
    },
    force: { type: 'boolean', help: "move an existing node's files aside" },
  },
  async run(ctx) {
    const { flags } = ctx
    const contracts = {
      capsuleRegistry: flags['capsule-registry'],
      nodeRegistry: flags['node-registry'],
      accessController: flags['access-controller'],
    }
    for (const [k, v] of Object.entries(contracts)) {
      if (v === undefined) {
        throw new UsageError('init needs the three contract addresses', {
          details: { missing: k },
          hint: 'Pass --capsule-registry, --node-registry and --access-controller.',
        })
      }
    }
    const extra = flags['extra-rpc-url']
    if (flags.quorum !== undefined && flags.quorum > 1 + (extra?.length ?? 0)) {
      throw new UsageError('--quorum must be 1..the number of RPC URLs', {
        details: { quorum: flags.quorum, rpcs: 1 + (extra?.length ?? 0) },
      })
    }
    const file = flags['mnemonic-file']
    const mnemonic =
      file === undefined
        ? undefined
        : await readFile(file, 'utf8').then(
            (t) => t.trim(),
            (cause) => {
              throw new ConfigError('Cannot read the mnemonic file', { cause, details: { file } })
            },
          )
    const dataDir = dataDirOf(ctx)
    const { initExecutorNode } = await import('../executor-node.ts')
    const r = await initExecutorNode({
      dataDir,
      rpcUrl: flags['rpc-url'],
      rpcUrls: extra,
      quorum: flags.quorum,
      chainId: flags['chain-id'],
      contracts: contracts as Required<{ [K in keyof typeof contracts]: string }>,
      listen: flags.listen,
      bootstrap: flags.bootstrap,
      keyguardAddrs: flags['keyguard-addr'],
      fast: flags.fast,
      mnemonic,
      force: flags.force,
    })
    if (r.generated) {
      ctx.io.stderr.write(
        '\n=== RECOVERY MNEMONIC: write these 24 words on paper NOW. They are shown only once. ===\n' +
          `${r.mnemonic}\n` +
          '=== They are also in identity.json (0600); whoever reads it controls this executor. ===\n\n',
      )
    }
    ctx.result(
      {
        dataDir,
        address: r.address,
        peerId: r.peerId,
        receiverPublicKey: r.receiverPublicKey,
        chainId: r.config.chainId,
      },
      `executor-node initialised in ${dataDir}\n  address            ${r.address}\n  peer id            ${r.peerId}\n  receiver key       ${r.receiverPublicKey}\n  chain              ${r.config.chainId}\nNext: fund the address, then \`executor-node register --stake <eth>\`.\n`,
    )
  },
})
