/**
 * Decimal ETH ↔ wei for policy fees (18 decimals), as ethers' `parseEther` / `formatEther` do
 * it, without loading ethers: the policy parser runs in every `pi-node seal`.
 */

const WEI_PER_ETH = 10n ** 18n

/** Wei of a decimal ETH amount already checked to be `\d+(\.\d{1,18})?`. */
export function parseEther(eth: string): bigint {
  const [whole = '0', fraction = ''] = eth.split('.')
  return BigInt(whole) * WEI_PER_ETH + BigInt(fraction.padEnd(18, '0'))
}

/** A non-negative wei amount as decimal ETH with at least one fraction digit (`1.0`, `0.01`). */
export function formatEther(wei: bigint): string {
  const fraction = (wei % WEI_PER_ETH).toString().padStart(18, '0').replace(/0+$/, '')
  return `${wei / WEI_PER_ETH}.${fraction === '' ? '0' : fraction}`
}
