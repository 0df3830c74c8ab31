/** `registerExecutor`: stake and register an executor (account + libp2p identity) in NodeRegistry. */
import { getNetwork, type NetworkRef } from '../networks/registry.ts'
import { checkChainId } from '../receive/chain-grants.ts'
import { requireTransactionSigner } from '../signer/signer.ts'
import { type ExecutorIdentity, openExecutorSession } from './executor-session.ts'

export interface RegisterExecutorParameters extends ExecutorIdentity {
  readonly network: NetworkRef
  readonly rpcUrl?: string | undefined
  /** Stake in wei (at least the registry's minimum, 0.01 ETH on `local`). */
  readonly stake: bigint
}

export interface RegisterExecutorReturnType {
  readonly address: `0x${string}`
  readonly peerId: string
  readonly transaction: string
}

/**
 * @throws {SignerUnsupportedError} for a signer without `signTransaction` (registration is a
 *   transaction), before anything starts;
 *   `@digicap/cli-kit`'s `InsufficientFundsError` (naming the account and what to send)
 *   when the account cannot pay the stake plus gas, before anything is sent;
 *   `@digicap/contracts`' `ContractRevertError` (`AlreadyRegistered`, `StakeTooLow`, …),
 *   `@digicap/executor`'s `AccessUnavailableError` when the chain cannot be reached.
 */
export async function registerExecutor(
  p: RegisterExecutorParameters,
): Promise<RegisterExecutorReturnType> {
  const network = getNetwork(p.network, { rpcUrl: p.rpcUrl })
  requireTransactionSigner(p.signer, 'Registering an executor')
  await checkChainId(network)
  const session = await openExecutorSession(network, p, { listen: [], start: false })
  try {
    const { transaction } = await session.register({ stake: p.stake })
    return { address: p.signer.address, peerId: session.peerId, transaction }
  } finally {
    await session.stop()
  }
}
