/**
 * Grants on chain. Where a receiver learns a grant's executor: the AccessController
 * (`getGrant`). Chain-path grants are there when the executor asks; fast-path grants appear
 * when the keyguard's audit record (`recordFastPathGrant`) is mined, under the id of the run
 * index the chain has then, which the executor finds with `findRecordedGrant`
 * (`recorded-grant.ts`, apart: no ethers on a run's path) when it differs from the keyguard's
 * answer (ADR 0073).
 */

import {
  type AccessControllerContract,
  accessControllerAbi,
  ContractRevertError,
  decodeRevert,
} from '@digicap/contracts'
import type { ResultGrantSource } from '@digicap/protocol'
import { Contract, type ContractRunner, getBytes, hexlify } from 'ethers'
import { AccessUnavailableError } from '../errors.ts'

/** The receiver's view of the chain (the interface lives with the receiver in protocol). */
export type { ResultGrantSource }

export interface EthersResultGrantsInit {
  readonly chainId: bigint | number | string
  readonly accessController: string
  /** A provider (read-only calls). */
  readonly runner: ContractRunner
}

/**
 * @example
 * ```ts
 * const grants = ethersResultGrants({ chainId: 31337, accessController, runner: provider })
 * const receiver = createResultReceiver({ privateKey, grants })({ libp2p, store })
 * ```
 */
export function ethersResultGrants(init: EthersResultGrantsInit): ResultGrantSource {
  const controller = new Contract(
    init.accessController,
    accessControllerAbi,
    init.runner,
  ) as unknown as AccessControllerContract
  return {
    domain: {
      chainId: BigInt(init.chainId),
      verifyingContract: init.accessController as `0x${string}`,
    },
    async getGrant(grantId) {
      try {
        const g = await controller.getGrant(hexlify(grantId))
        return {
          executor: getBytes(g.executor),
          capsuleId: getBytes(g.capsuleId),
          ephemeralKey: getBytes(g.ephemeralKey),
          runIndex: BigInt(g.runIndex),
        }
      } catch (err) {
        const e = decodeRevert(err)
        if (e instanceof ContractRevertError && e.errorName === 'GrantNotFound') return undefined
        throw new AccessUnavailableError('Grant lookup failed', { cause: err })
      }
    },
  }
}
