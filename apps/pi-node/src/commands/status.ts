/** `pi-node status`: the node's state, read without starting it. */
import { warnOnce } from '@digicap/cli-kit'
import { rpcProviderWarnings } from '@digicap/ops/rpc-providers'
import { statusPageLine, statusPageLink } from '@digicap/ops/status-link'
import type { OperatorStatus } from '@digicap/owner'
import { command, configOf, dataDirOf, loggerOf } from './shared.ts'

function operatorLine(o: OperatorStatus): string {
  if (o.address === undefined) return 'none (version-1 owner file: audits use the owner account)'
  const approval =
    o.approved === undefined ? 'approval unknown' : o.approved ? 'approved' : 'NOT approved'
  const balance = o.balanceWei === undefined ? '' : `, balance ${o.balanceWei} wei`
  return `${o.address} (${approval}${balance})`
}

export const status = command({
  name: 'status',
  summary: "show the node's state",
  description: `Shows the config, the sealer (with any insecurity warning), owner address, peer id,
chain reachability and head block, contract addresses, stored capsules and the daemon.`,
  async run(ctx) {
    // The light entry: no ethers, libp2p, codecs or curves load for a status (ADR 0051).
    const o = await import('@digicap/owner/node/light')
    const config = await configOf(ctx)
    const s = await o.readOwnerNodeStatus(config, { logger: loggerOf(ctx) })
    for (const w of rpcProviderWarnings(config)) warnOnce(ctx.io, w.line)
    if (!('error' in s.sealer) && s.sealer.warning) warnOnce(ctx.io, s.sealer.warning)
    if (s.operator.warning) ctx.io.stderr.write(`WARNING: ${s.operator.warning}\n`)
    const chain = s.chain.reachable
      ? `head ${s.chain.head}, owner balance ${s.chain.ownerBalanceWei} wei`
      : `UNREACHABLE error[${s.chain.error.code}]`
    const page = await statusPageLink(dataDirOf(ctx))
    ctx.result(
      { status: s, statusPage: page },
      `pi-node ${s.dataDir}\n` +
        `  owner       ${s.owner.address}\n` +
        `  peer id     ${s.owner.peerId}\n` +
        `  operator    ${operatorLine(s.operator)}\n` +
        `  sealer      ${o.sealerStatusText(s.sealer)}\n` +
        `  chain       ${s.chainId} ${s.rpcUrl} ${chain}\n` +
        `  registry    ${s.contracts.capsuleRegistry}\n` +
        `  capsules    ${s.capsules}\n` +
        `  daemon      ${s.daemon.running ? `running (pid ${s.daemon.pid})` : 'not running'}\n` +
        (s.daemon.keyguard ? o.keyguardStatusText(s.daemon.keyguard, s.daemon.updatedAt) : '') +
        statusPageLine(page),
    )
  },
})
