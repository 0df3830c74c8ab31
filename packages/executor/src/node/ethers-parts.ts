/**
 * The parts of an executor node that need ethers: its providers, the chain client that sends
 * transactions (chain-path `requestAccess`, `registerNode`) and reads `isRegistered`, and the
 * funds reader (grants are read without ethers: `jsonRpcGrantReads`). `openExecutorNode` imports this file on first use, so a
 * run that sends no transaction (the fast path) never loads ethers (ADR 0052).
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { createProvider, digicapEthersSigner } from '@digicap/contracts'
import { type Provider, type Signer, VoidSigner } from 'ethers'
import { type ExecutorChain, ethersExecutorChain } from '../chain.ts'
import { chainWithoutTransactions } from './account.ts'
import { ethersChainFunds } from './register.ts'
import type { ChainFunds, ExecutorChainConnection } from './types.ts'

/** What sends the account's transactions; a signer without `signTransaction` sends none. */
export function transactionSender(signer: DigicapSigner, provider: Provider): Signer {
  return typeof signer.signTransaction === 'function'
    ? digicapEthersSigner(signer, provider)
    : new VoidSigner(signer.address, provider)
}

export type EthersPartsParameters = ExecutorChainConnection

export interface EthersParts {
  readonly chain: ExecutorChain
  readonly funds: ChainFunds
  /** The first RPC's provider (the committee's reads use it too). */
  readonly provider: Provider
  /** Closes the providers. */
  destroy(): void
}

export function ethersParts(p: EthersPartsParameters, signer: DigicapSigner): EthersParts {
  const provider = createProvider(p.rpcUrl, p.chainId)
  const readProviders = [
    provider,
    ...(p.readRpcUrls ?? []).map((u) => createProvider(u, p.chainId)),
  ]
  const chain = ethersExecutorChain({
    addresses: { chainId: String(p.chainId), ...p.contracts },
    signer: transactionSender(signer, provider),
    readProviders,
    ...(p.quorum === undefined ? {} : { quorum: p.quorum }),
  })
  return {
    chain:
      typeof signer.signTransaction === 'function'
        ? chain
        : chainWithoutTransactions(chain, signer.address),
    funds: ethersChainFunds(provider),
    provider,
    destroy() {
      for (const r of readProviders) r.destroy()
    },
  }
}
