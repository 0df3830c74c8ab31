/** `pi-node move-policy <capsule-id>`: the capsule to another policy, on chain then in its key record. */
import { definedFields, positiveInteger, UsageError, valueFlag } from '@digicap/cli-kit'
import { POLICY_EXPRESSION_HELP } from '@digicap/contracts/policy-help'
import { command, openPiNode } from './shared.ts'

export const movePolicy = command({
  name: 'move-policy',
  summary: 'move a capsule to another policy (a new expression or a deployed contract)',
  usage: `<capsule-id> --policy '<expr>' | --policy-address <0x..>`,
  description: `Deploys the policy expression (as seal does) or takes a deployed policy contract, points
the capsule's registration at it (updatePolicy), then the key record once the keyguard's
chain reads it. No key is released under either policy in between. Safe while serve runs;
run it again to finish a move a crash or a timeout cut off (a deployment made for the same
expression is re-used).`,
  args: [{ name: 'capsule-id', help: 'the capsule (0x + 64 hex)' }],
  flags: {
    policy: valueFlag("'<expr>'", 'the new unlock rule, deployed first (see below)'),
    'policy-address': valueFlag('<0x..>', 'or a policy contract already deployed'),
    'timeout-ms': valueFlag('<n>', "wait for the keyguard's chain to read it (default 120000)", {
      parse: positiveInteger,
    }),
  },
  epilog: POLICY_EXPRESSION_HELP,
  async run(ctx) {
    const { flags, args } = ctx
    const [expression, address] = [flags.policy, flags['policy-address']]
    if ((expression === undefined) === (address === undefined)) {
      throw new UsageError('move-policy takes --policy or --policy-address (one of them)')
    }
    const r = await (await openPiNode(ctx)).movePolicy({
      capsuleId: args['capsule-id'],
      ...(expression !== undefined ? { expression } : { policy: address as string }),
      ...definedFields({ confirmTimeoutMs: flags['timeout-ms'] }),
    })
    const { movePolicyResultText } = await import('@digicap/owner/node')
    ctx.result({ ...r }, movePolicyResultText(r))
  },
})
