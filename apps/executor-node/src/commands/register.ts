/** `executor-node register --stake <eth>`: stake and register in the NodeRegistry. */
import { toHex } from '@digicap/capsule-core/light'
import { positiveEther, UsageError, valueFlag } from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

/** `executor,verifier` → the NodeRegistry role bits (`NODE_ROLES` of `@digicap/executor/node`). */
export function parseRoles(text: string, bitsOf: Readonly<Record<string, number>>): number {
  let bits = 0
  for (const r of text.split(',').map((s) => s.trim())) {
    const bit = Object.hasOwn(bitsOf, r) ? bitsOf[r] : undefined
    if (bit === undefined) throw new UsageError('Unknown role', { details: { role: r } })
    bits |= bit
  }
  return bits
}

export const register = command({
  name: 'register',
  summary: 'stake and register in the NodeRegistry',
  usage: '--stake <eth> [--roles executor,verifier]',
  description: `Registers this executor in the NodeRegistry with its libp2p peer id and <eth> of stake.
With a TPM in the config (init --tcti, env DIGICAP_TCTI) it first creates or loads the EK and
AK, writes <data-dir>/attestation-record.bin, and registers its SHA-256 as attestationKeyHash
(else the zero hash: no attestation key).`,
  flags: {
    stake: valueFlag('<eth>', 'stake, in ether'),
    roles: valueFlag('<list>', 'executor, verifier', { default: 'executor' }),
  },
  async run(ctx) {
    const ether = ctx.flags.stake
    if (ether === undefined) throw new UsageError('register needs --stake <eth>')
    const stake = positiveEther(ether, 'stake')
    const [{ createExecutorNode }, { NODE_ROLES }] = await Promise.all([
      import('../executor-node.ts'),
      import('@digicap/executor/node'),
    ])
    const roles = parseRoles(ctx.flags.roles, NODE_ROLES)
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, { listen: [], executor: false })
    try {
      const r = await en.register({ roles, stake })
      const hash = toHex(r.attestationKeyHash)
      const { address, peerId, attestation } = en
      ctx.result(
        { address, peerId, roles, stake, attestationKeyHash: hash, transaction: r.transaction },
        `registered ${address} (peer ${peerId}, roles ${roles}) with ${ether} ETH\n${attestation ? `  attestation key ${hash}\n` : ''}  tx ${r.transaction}\n`,
      )
    } finally {
      await en.stop()
    }
  },
})
