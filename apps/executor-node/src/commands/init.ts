/** `executor-node init`: identity, receiver key and config. */
import { readFile } from 'node:fs/promises'
import {
  ConfigError,
  contractFlags,
  contractsOf,
  listFlag,
  mnemonicBanner,
  positiveInteger,
  switchFlag,
  UsageError,
  valueFlag,
} from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

export const init = command({
  name: 'init',
  summary: 'create identity, receiver key and config',
  usage: '--capsule-registry <a> --node-registry <a> --access-controller <a> [options]',
  description: `Creates the executor's identity (a 24-word BIP-39 mnemonic: Ethereum account + libp2p key)
and a receiver key (X25519), both sealed in <data-dir>/secrets.json (by the TPM of --tcti;
without one, the software sealer, loudly INSECURE), and <data-dir>/config.json. A generated mnemonic is shown ONCE on stderr.`,
  flags: {
    'rpc-url': valueFlag('<url>', 'chain RPC', {
      env: 'DIGICAP_RPC_URL',
      default: 'http://127.0.0.1:8545',
    }),
    'extra-rpc-url': listFlag(
      '<url>',
      "another RPC of the same chain for the registry checks' quorum\n(env DIGICAP_RPC_URLS, comma list)",
    ),
    quorum: valueFlag('<n>', 'RPCs that must agree on a registry read (default: majority)', {
      parse: positiveInteger,
    }),
    'chain-id': valueFlag('<n>', 'expected chain id (default: asked from the RPC)', {
      parse: positiveInteger,
    }),
    ...contractFlags('Digicap contracts'),
    bootstrap: listFlag('<multiaddr>', 'peer to dial at start'),
    'keyguard-addr': listFlag('<multiaddr>', 'keyguard to dial before each run'),
    fast: switchFlag('use the keyguard fast path by default'),
    oci: switchFlag('run image capsules under runc (env DIGICAP_OCI=1; root, runc, umoci)'),
    tcti: valueFlag(
      '<tcti>',
      'TPM for attestation: device:/dev/tpmrm0 or swtpm:host=…,port=…\n(env DIGICAP_TCTI; default: none, no attestation key)',
      { env: 'DIGICAP_TCTI' },
    ),
    'mnemonic-file': valueFlag('<path>', 'import these words instead of generating new ones'),
    force: switchFlag("move an existing node's files aside"),
  },
  async run(ctx) {
    const { flags } = ctx
    const contracts = contractsOf(flags)
    if (!contracts) throw new UsageError('init needs the three contract addresses')
    const file = flags['mnemonic-file']
    const mnemonic =
      file &&
      (await readFile(file, 'utf8').catch((cause) => {
        throw new ConfigError('Cannot read the mnemonic file', { cause, details: { file } })
      }))
    const dataDir = dataDirOf(ctx)
    const { initExecutorNode } = await import('../executor-node.ts')
    const r = await initExecutorNode({
      dataDir,
      contracts,
      chainId: flags['chain-id'],
      flags,
      mnemonic: mnemonic?.trim(),
      force: flags.force,
    })
    const warning = 'Sealed in secrets.json (TPM; without one the INSECURE software sealer).'
    if (r.generated) ctx.io.stderr.write(mnemonicBanner(r.mnemonic, warning))
    const { address: account, peerId, receiverPublicKey, config, voteRecord } = r
    const voteNote = `  vote record        ${voteRecord === 'none' ? 'none (imported words, ADR 0093): restore signed-votes.json, or serve --role verifier --new-vote-record if this key has no open jobs' : voteRecord}\n`
    ctx.result(
      { dataDir, address: account, peerId, receiverPublicKey, chainId: config.chainId, voteRecord },
      `executor-node initialised in ${dataDir}\n  address            ${account}\n  peer id            ${peerId}\n  receiver key       ${receiverPublicKey}\n  chain              ${config.chainId}\n${voteNote}Next: fund the address, then \`executor-node register --stake <eth>\`.\n`,
    )
  },
})
