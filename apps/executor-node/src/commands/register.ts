/** `executor-node register --stake <eth>`: stake and register in the NodeRegistry. */

import { toHex } from '@digicap/capsule-core'
import { positiveEther, UsageError, valueFlag } from '@digicap/cli-kit'
import { command, dataDirOf } from './shared.ts'

/** NodeRegistry role bits by name. */
const ROLES: Record<string, number> = { executor: 1, verifier: 2 }

/** `executor,verifier` → the NodeRegistry role bits. */
export function parseRoles(text: string): number {
  let bits = 0
  for (const r of text.split(',').map((s) => s.trim())) {
    const bit = ROLES[r]
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
    roles: valueFlag('<list>', 'executor, verifier', { default: 'executor', parse: parseRoles }),
  },
  async run(ctx) {
    const { roles } = ctx.flags
    const ether = ctx.flags.stake
    if (ether === undefined) throw new UsageError('register needs --stake <eth>')
    const stake = positiveEther(ether, 'stake')
    const { createExecutorNode, requireStakeFunds } = await import('../executor-node.ts')
    const dataDir = dataDirOf(ctx)
    const en = await createExecutorNode(dataDir, ctx.env, { listen: [], executor: false })
    try {
      await requireStakeFunds(en.wallet, stake)
      const tcti = en.config.tcti
      const attestation =
        tcti === undefined
          ? undefined
          : await import('../attestation.ts').then((m) => m.loadNodeAttestation(dataDir, tcti))
      const attestationKeyHash = attestation?.hash ?? new Uint8Array(32)
      const tx = await en.chain.registerNode({
        peerId: en.node.libp2p.peerId.toMultihash().bytes,
        attestationKeyHash,
        roles,
        stake,
      })
      const { address } = en.wallet
      const hash = toHex(attestationKeyHash)
      ctx.result(
        { address, peerId: en.peerId, roles, stake, attestationKeyHash: hash, transaction: tx },
        `registered ${address} (peer ${en.peerId}, roles ${roles}) with ${ether} ETH\n${attestation ? `  attestation key ${hash}\n` : ''}  tx ${tx}\n`,
      )
    } finally {
      await en.stop()
    }
  },
})
