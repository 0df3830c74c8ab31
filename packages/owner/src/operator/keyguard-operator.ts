/**
 * The keyguard operator account (m/44'/60'/0'/0/1 of the owner's words): it signs the fast
 * path's on-chain audit records, so they never race the owner's own transactions for a
 * nonce. The owner approves it once (`CapsuleRegistry.setOperator`); it needs ETH for gas.
 */
import { DigicapError } from '@digicap/capsule-core'
import { connectDigicap, decodeRevert } from '@digicap/contracts'
import type { Logger } from '@digicap/keyguard'
import type { JsonRpcProvider, Provider, Signer } from 'ethers'
import type { TransactionSerializer } from '../policy/types.ts'
import type { ChainContracts } from '../registry/types.ts'
import { type OperatorStatus, withOperatorWarning } from './operator-status.ts'

/** 1000 ETH: what a dev chain gives an unfunded operator. */
const DEV_FUNDS = '0x3635c9adc5dea00000'

export { type OperatorStatus, operatorWarning } from './operator-status.ts'

/**
 * Reads the operator's approval by `owner` and its balance.
 * @throws whatever the RPC throws.
 */
export async function readKeyguardOperator(
  provider: Provider,
  contracts: ChainContracts,
  owner: string,
  operator: string,
): Promise<OperatorStatus> {
  const { capsuleRegistry } = connectDigicap(contracts, provider)
  const [approved, balance] = await Promise.all([
    capsuleRegistry.getFunction('isOperator')(owner, operator) as Promise<boolean>,
    provider.getBalance(operator),
  ])
  return withOperatorWarning({
    address: operator,
    approved: Boolean(approved),
    balanceWei: balance.toString(),
  })
}

function codeOf(err: unknown): string {
  const decoded = decodeRevert(err)
  return decoded instanceof DigicapError ? String(decoded.code) : 'UNKNOWN'
}

/**
 * Makes sure the owner approved its keyguard operator (`setOperator(operator, true)`, sent
 * from `owner` if it has ETH for it); with `devFund`, gives an unfunded operator dev-chain ETH
 * (`anvil_setBalance`). Never throws: what is still missing is in `warning`.
 *
 * @example
 * ```ts
 * const s = await ensureKeyguardOperator(provider, contracts, ownerWallet, operatorAddress)
 * if (s.warning) console.warn(s.warning)
 * ```
 */
export async function ensureKeyguardOperator(
  provider: JsonRpcProvider,
  contracts: ChainContracts,
  owner: Signer,
  operator: string,
  options: { devFund?: boolean; logger?: Logger; serialize?: TransactionSerializer } = {},
): Promise<OperatorStatus> {
  const serialize = options.serialize ?? ((fn) => fn())
  try {
    const ownerAddress = await owner.getAddress()
    const s = await readKeyguardOperator(provider, contracts, ownerAddress, operator)
    if (options.devFund && s.balanceWei === '0') {
      await provider.send('anvil_setBalance', [operator, DEV_FUNDS]).catch((err) => {
        options.logger?.warn('cannot fund the keyguard operator', { code: codeOf(err) })
      })
    }
    if (!s.approved && (await provider.getBalance(ownerAddress)) > 0n) {
      const { capsuleRegistry } = connectDigicap(contracts, owner)
      await serialize(async () => {
        await (await capsuleRegistry.getFunction('setOperator')(operator, true)).wait()
      })
      options.logger?.info('keyguard operator approved', { operator })
    }
    return await readKeyguardOperator(provider, contracts, ownerAddress, operator)
  } catch (err) {
    const code = codeOf(err)
    options.logger?.warn('cannot check or approve the keyguard operator', { code })
    return {
      address: operator,
      warning: `Keyguard operator ${operator}: cannot check or approve it (error[${code}]). Fast-path audit records fail until the owner approves it.`,
    }
  }
}
