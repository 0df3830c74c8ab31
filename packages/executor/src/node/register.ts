/** Registration in NodeRegistry: the role bits, and the funds check before the stake is sent. */
import { InsufficientFundsError } from '@digicap/cli-kit'
import type { Provider } from 'ethers'
import type { ChainFunds } from './types.ts'

/** NodeRegistry's role bits (`ROLE_EXECUTOR`, `ROLE_VERIFIER`), by name. */
export const NODE_ROLES = Object.freeze({ executor: 1, verifier: 2 })

/** Gas `register` may use, for the funds check (anvil measures under 200 000). */
const REGISTER_GAS = 300_000n

const WEI_PER_ETH = 10n ** 18n

/** Wei as ether, as ethers' `formatEther` writes it ("0.01", "1.0"), without loading ethers. */
export function formatEth(wei: bigint): string {
  const fraction = (wei % WEI_PER_ETH).toString().padStart(18, '0').replace(/0+$/, '')
  return `${wei / WEI_PER_ETH}.${fraction === '' ? '0' : fraction}`
}

/**
 * Checks, before sending, that `address` can pay the registration's stake plus its gas: the
 * chain's own answer to an unfunded account names neither the account nor the amount.
 * @throws {InsufficientFundsError} naming the address, its balance and what to send it.
 */
export async function requireStakeFunds(
  funds: ChainFunds,
  address: string,
  stake: bigint,
): Promise<void> {
  const [balance, feePerGas] = await Promise.all([funds.balanceOf(address), funds.maxFeePerGas()])
  const gas = REGISTER_GAS * feePerGas
  const needed = stake + gas
  if (balance >= needed) return
  const eth = (wei: bigint) => `${formatEth(wei)} ETH`
  const missing = eth(needed - balance)
  throw new InsufficientFundsError(
    `The account ${address} has ${eth(balance)}; register needs ${eth(needed)}`,
    {
      details: { address, balance: eth(balance), stake: eth(stake), gas: eth(gas), missing },
      hint: `Send at least ${missing} to ${address} (the stake, ${eth(stake)}, plus gas), then register again.`,
    },
  )
}

/** `ChainFunds` over an ethers provider. */
export function ethersChainFunds(provider: Provider): ChainFunds {
  return {
    balanceOf: (address) => provider.getBalance(address),
    async maxFeePerGas() {
      const fees = await provider.getFeeData()
      return fees.maxFeePerGas ?? fees.gasPrice ?? 0n
    },
  }
}
