/**
 * `@digicap/ops/rpc-providers`: whether a node's RPCs can outvote a liar. With one RPC (quorum 1)
 * a lying RPC can forge both a grant log and `getGrant`, so a keyguard would release a key for a
 * grant the chain never made. Off a dev chain, fewer than two distinct providers is warned about
 * at `serve` and in `status`. Light: no network, no ethers.
 */

/** Dev chains (anvil, hardhat/ganache), where one local RPC is the norm. */
export const DEV_CHAIN_IDS: readonly number[] = [31337, 1337]

export interface RpcProviderWarning {
  code: 'SINGLE_RPC_PROVIDER'
  message: string
  details: { chainId: number; providers: string[] }
  hint: string
  /** `message` and `hint` on one line, what a CLI prints after `WARNING: `. */
  line: string
}

/**
 * The provider an RPC URL belongs to: its host's last two DNS labels (`eth-mainnet.g.alchemy.com`
 * and `base.g.alchemy.com` are one provider), or the whole host for an IP address. An unparsable
 * URL counts as itself.
 */
export function rpcProvider(url: string): string {
  let host: string
  try {
    host = new URL(url).hostname.toLowerCase().replace(/\.$/, '')
  } catch {
    return url
  }
  if (host.startsWith('[') || /^\d+(\.\d+){3}$/.test(host)) return host
  return host.split('.').slice(-2).join('.')
}

/**
 * Warnings about a node's RPC set: one when `chainId` is not a dev chain and `rpcUrl` plus
 * `rpcUrls` name fewer than two distinct providers.
 *
 * @example
 * ```ts
 * for (const w of rpcProviderWarnings(config)) io.stderr.write(`WARNING: ${w.line}\n`)
 * ```
 */
export function rpcProviderWarnings(config: {
  chainId: number
  rpcUrl: string
  rpcUrls?: readonly string[] | undefined
}): RpcProviderWarning[] {
  if (DEV_CHAIN_IDS.includes(config.chainId)) return []
  const providers = [...new Set([config.rpcUrl, ...(config.rpcUrls ?? [])].map(rpcProvider))]
  if (providers.length >= 2) return []
  const message = `chain ${config.chainId} is read through one RPC provider (${providers.join(', ')}): a lying RPC can forge a grant and get a key released.`
  const hint =
    'Add RPC URLs of at least one other provider (rpcUrls in the config, or DIGICAP_RPC_URLS).'
  return [
    {
      code: 'SINGLE_RPC_PROVIDER',
      message,
      details: { chainId: config.chainId, providers },
      hint,
      line: `${message} ${hint}`,
    },
  ]
}
