/**
 * Grants on chain. Where a receiver learns a grant's executor: the AccessController
 * (`getGrant`). Chain-path grants are there when the executor asks; fast-path grants appear
 * when the keyguard's audit record (`recordFastPathGrant`) is mined, under the id of the run
 * index the chain has then, which the executor finds with `findRecordedGrant`
 * (`recorded-grant.ts`, apart: no ethers on a run's path) when it differs from the keyguard's
 * answer (ADR 0073).
 */

import { InvalidArgumentError } from '@digicap/capsule-core'
import type { ResultGrantSource } from '@digicap/protocol'
import type { ContractRunner } from 'ethers'
import { type JsonRpcSender, jsonRpcGrantReads } from '../registry/json-rpc-registry.ts'

/** The receiver's view of the chain (the interface lives with the receiver in protocol). */
export type { ResultGrantSource }

export interface EthersResultGrantsInit {
  readonly chainId: bigint | number | string
  readonly accessController: string
  /** A JSON-RPC provider, or a signer connected to one (read-only calls). */
  readonly runner: ContractRunner
}

/**
 * `getGrant` is the executor's one grant reader (`jsonRpcGrantReads`) over the runner's provider.
 * @throws {InvalidArgumentError} when the runner has no JSON-RPC provider (`send`).
 * @example
 * ```ts
 * const grants = ethersResultGrants({ chainId: 31337, accessController, runner: provider })
 * const receiver = createResultReceiver({ privateKey, grants })({ libp2p, store })
 * ```
 */
export function ethersResultGrants(init: EthersResultGrantsInit): ResultGrantSource {
  const sender = [init.runner, init.runner.provider].find(
    (r): r is ContractRunner & JsonRpcSender =>
      typeof (r as Partial<JsonRpcSender> | null)?.send === 'function',
  )
  if (sender === undefined)
    throw new InvalidArgumentError('ethersResultGrants needs a JSON-RPC provider', {
      hint: 'Pass createProvider(url, chainId) from @digicap/contracts, or a signer connected to one.',
    })
  const { getGrant } = jsonRpcGrantReads({
    providers: [sender],
    accessController: init.accessController,
  })
  return {
    domain: {
      chainId: BigInt(init.chainId),
      verifyingContract: init.accessController as `0x${string}`,
    },
    getGrant,
  }
}
