/**
 * The receiver's view of the chain over plain JSON-RPC (`fetch` + `eth_call`): who a grant
 * names, so that only that executor's result is taken. No ethers and no contract bindings on
 * the receive path; the two ABI shapes read here are decoded by the executor's own hand ABI
 * (`decodeGetGrant`, `decodeGetCapsule` of `@digicap/contracts/light`).
 *
 * One RPC is trusted for what it answers. With `rpcUrls` the reads go to every RPC, at one
 * block `confirmations` below the quorum's head, and only an answer a quorum gave is taken
 * (`jsonRpcQuorum` of `@digicap/contracts/light`): a single lying RPC is outvoted.
 */

import {
  InvalidArgumentError,
  redactRpcUrl,
  rpcCall,
  rpcChainId,
  toHex,
} from '@digicap/capsule-core'
import type { DigicapNetwork } from '@digicap/contracts'
import {
  CAPSULE_NOT_FOUND_SELECTOR,
  CapsuleAbiError,
  decodeGetCapsule,
  decodeGetGrant,
  GRANT_NOT_FOUND_SELECTOR,
  GrantAbiError,
  getCapsuleCallData,
  getGrantCallData,
  type JsonRpcQuorum,
  jsonRpcQuorum,
  QuorumError,
} from '@digicap/contracts/light'
import type { GrantRecord, ResultCapsuleRegistry, ResultGrantSource } from '@digicap/protocol'
import { ChainMismatchError, ChainReadError } from '../errors.ts'

export type { ResultGrantSource }

/** The hex of a call's answer, or '' for anything else. */
const hexOf = (result: unknown): string => (typeof result === 'string' ? result : '')

/** Where the receiver reads the chain: more RPCs, how many must agree, how deep. */
export interface ChainReadOptions {
  /** More RPC URLs of the same chain, read besides the network's `rpcUrl` (distinct providers). */
  readonly rpcUrls?: readonly string[] | undefined
  /** How many RPCs must give the same answer. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
  /** Read at this many blocks below the head (0: the head). Default 0. */
  readonly confirmations?: number | undefined
}

/**
 * Checks that `network.rpcUrl` (and each of `rpcUrls`) serves `network.chainId`.
 * @throws {ChainMismatchError} | {@link ChainReadError}
 */
export async function checkChainId(
  network: DigicapNetwork,
  rpcUrls: readonly string[] = [],
): Promise<void> {
  for (const url of [network.rpcUrl, ...rpcUrls]) {
    const actual = await rpcChainId(url)
    if (actual !== network.chainId) {
      throw new ChainMismatchError('The RPC serves another chain than the network names', {
        details: {
          network: network.name,
          expected: network.chainId,
          actual,
          rpcUrl: redactRpcUrl(url),
        },
        hint: 'Pass the rpcUrl of that network, or the network that this RPC serves.',
      })
    }
  }
}

interface ChainReads {
  /** Runs `read` on each RPC at the read block; the quorum's answer. @throws {ChainReadError} */
  agree<T>(
    operation: string,
    read: (rpcUrl: string, blockTag: string) => Promise<T>,
    key: (value: T) => string,
  ): Promise<T>
}

/** @throws {InvalidArgumentError} unless every one of `rpcUrls` is an http(s) URL. */
export function checkRpcUrls(rpcUrls: readonly string[] | undefined): void {
  for (const url of rpcUrls ?? []) {
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) {
      throw new InvalidArgumentError('rpcUrls are http(s) URLs', {
        details: { got: typeof url === 'string' ? url.slice(0, 8) : typeof url },
      })
    }
  }
}

/** @throws {InvalidArgumentError} for a quorum outside 1..RPCs or a bad confirmation depth. */
function chainReads(network: DigicapNetwork, options: ChainReadOptions): ChainReads {
  const confirmations = options.confirmations ?? 0
  if (!Number.isSafeInteger(confirmations) || confirmations < 0) {
    throw new InvalidArgumentError('confirmations is a whole number of blocks ≥ 0', {
      details: { confirmations },
    })
  }
  checkRpcUrls(options.rpcUrls)
  const rpcs: JsonRpcQuorum = jsonRpcQuorum({
    rpcUrls: [network.rpcUrl, ...(options.rpcUrls ?? [])],
    ...(options.quorum === undefined ? {} : { quorum: options.quorum }),
  })
  return {
    async agree(operation, read, key) {
      try {
        // One RPC at the head: `latest` (nothing to compare, no extra round trip).
        let blockTag = 'latest'
        if (rpcs.size > 1 || confirmations > 0) {
          const at = (await rpcs.head()) - BigInt(confirmations)
          blockTag = `0x${(at > 0n ? at : 0n).toString(16)}`
        }
        return await rpcs.agree(operation, (url) => read(url, blockTag), key)
      } catch (err) {
        if (!(err instanceof QuorumError)) throw err
        throw new ChainReadError(`The RPCs do not agree on ${operation}`, {
          cause: err,
          details: { operation, quorum: rpcs.quorum, dissent: err.details.dissent },
          hint: 'One of them lies or lags: retry, or replace the RPC that details.dissent names.',
        })
      }
    },
  }
}

/**
 * Reads grants from the network's AccessController (`getGrant`); `GrantNotFound` is "not yet".
 * @example
 * ```ts
 * const grants = chainResultGrants(getNetwork('local'))
 * const g = await grants.getGrant(grantId) // undefined until the grant is on chain
 * ```
 */
export function chainResultGrants(
  network: DigicapNetwork,
  options: ChainReadOptions = {},
): ResultGrantSource {
  const to = network.addresses.accessController
  const reads = chainReads(network, options)
  const readAt = async (
    rpcUrl: string,
    blockTag: string,
    grantId: Uint8Array,
  ): Promise<GrantRecord | undefined> => {
    const r = await rpcCall(rpcUrl, 'eth_call', [{ to, data: getGrantCallData(grantId) }, blockTag])
    if (r.error !== undefined) {
      const data = typeof r.error.data === 'string' ? r.error.data.toLowerCase() : ''
      if (data.startsWith(GRANT_NOT_FOUND_SELECTOR)) return undefined
      throw new ChainReadError('Grant lookup failed', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), error: r.error.message?.slice(0, 200) },
      })
    }
    const hex = hexOf(r.result)
    try {
      return decodeGetGrant(hex)
    } catch (err) {
      if (!(err instanceof GrantAbiError)) throw err
      throw new ChainReadError('Grant lookup returned a malformed answer', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), bytes: Math.max(0, (hex.length - 2) / 2) },
        hint: 'Is the network’s accessController address right for this chain?',
      })
    }
  }
  return {
    domain: { chainId: BigInt(network.chainId), verifyingContract: to },
    async getGrant(grantId) {
      if (grantId.length !== 32) return undefined
      return reads.agree(
        'getGrant',
        (url, blockTag) => readAt(url, blockTag, grantId),
        (g) =>
          g === undefined
            ? 'none'
            : [g.executor, g.capsuleId, g.ephemeralKey].map(toHex).join() + g.runIndex,
      )
    },
  }
}

/**
 * Reads capsules from the network's CapsuleRegistry (`getCapsule`): the owner and the CID,
 * which the receiver uses to read the capsule's header and its receivers (SPEC §3.4.3 check 11).
 * `CapsuleNotFound` is undefined.
 * @example
 * ```ts
 * const registry = chainCapsuleRegistry(getNetwork('local'))
 * const c = await registry.getCapsule(capsuleId) // { owner, cid } or undefined
 * ```
 */
export function chainCapsuleRegistry(
  network: DigicapNetwork,
  options: ChainReadOptions = {},
): ResultCapsuleRegistry {
  const to = network.addresses.capsuleRegistry
  const reads = chainReads(network, options)
  const readAt = async (rpcUrl: string, blockTag: string, capsuleId: Uint8Array) => {
    const r = await rpcCall(rpcUrl, 'eth_call', [
      { to, data: getCapsuleCallData(capsuleId) },
      blockTag,
    ])
    if (r.error !== undefined) {
      const data = typeof r.error.data === 'string' ? r.error.data.toLowerCase() : ''
      if (data.startsWith(CAPSULE_NOT_FOUND_SELECTOR)) return undefined
      throw new ChainReadError('Capsule lookup failed', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), error: r.error.message?.slice(0, 200) },
      })
    }
    const hex = hexOf(r.result)
    try {
      const { owner, cid } = decodeGetCapsule(hex)
      return { owner, cid }
    } catch (err) {
      if (!(err instanceof CapsuleAbiError)) throw err
      throw new ChainReadError('Capsule lookup returned a malformed answer', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), bytes: Math.max(0, (hex.length - 2) / 2) },
        hint: 'Is the network’s capsuleRegistry address right for this chain?',
      })
    }
  }
  return {
    async getCapsule(capsuleId) {
      if (capsuleId.length !== 32) return undefined
      return reads.agree(
        'getCapsule',
        (url, blockTag) => readAt(url, blockTag, capsuleId),
        (c) => (c === undefined ? 'none' : `${c.owner.toLowerCase()} ${c.cid}`),
      )
    },
  }
}
