/** `executor-node register --stake <eth>`: stake and register in the NodeRegistry. */
import { UsageError } from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

export const register = command({
  name: 'register',
  summary: 'stake and register in the NodeRegistry',
  usage: '--stake <eth> [--roles executor,verifier]',
  description:
    'Registers this executor in the NodeRegistry with its libp2p peer id and <eth> of stake.',
  flags: {
    stake: { type: 'string', value: '<eth>', help: 'stake, in ether' },
    roles: { type: 'string', value: '<list>', help: 'executor, verifier', default: 'executor' },
  },
  async run(ctx) {
    const { flags } = ctx
    if (flags.stake === undefined) throw new UsageError('register needs --stake <eth>')
    const { createExecutorNode, parseRoles, parseStake, requireStakeFunds } = await import(
      '../executor-node.ts'
    )
    const stake = parseStake(flags.stake)
    const roles = parseRoles(flags.roles)
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, { listen: [], executor: false })
    try {
      await requireStakeFunds(en.wallet, stake)
      const tx = await en.chain.registerNode({
        peerId: en.node.libp2p.peerId.toMultihash().bytes,
        attestationKeyHash: new Uint8Array(32),
        roles,
        stake,
      })
      const { address } = en.wallet
      ctx.result(
        { address, peerId: en.peerId, roles, stake, transaction: tx },
        `registered ${address} (peer ${en.peerId}, roles ${roles}) with ${flags.stake} ETH\n  tx ${tx}\n`,
      )
    } finally {
      await en.stop()
    }
  },
})
