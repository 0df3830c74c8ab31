/**
 * The receiver's view of the chain over plain JSON-RPC (`fetch` + `eth_call`): who a grant
 * names, so that only that executor's result is taken. No ethers and no contract bindings on
 * the receive path; the two ABI shapes read here are fixed by AccessController.
 *
 * One RPC is trusted for what it answers. With `rpcUrls` the reads go to every RPC, at one
 * block `confirmations` below the quorum's head, and only an answer a quorum gave is taken
 * (`jsonRpcQuorum` of `@digicap/contracts/light`): a single lying RPC is outvoted.
 */

import {
  hexToBytes,
  InvalidArgumentError,
  redactRpcUrl,
  rpcCall,
  rpcChainId,
  toHex,
} from '@digicap/capsule-core'
import type { DigicapNetwork } from '@digicap/contracts'
import { type JsonRpcQuorum, jsonRpcQuorum, QuorumError } from '@digicap/contracts/light'
import type { GrantRecord, ResultCapsuleRegistry, ResultGrantSource } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { ChainMismatchError, ChainReadError } from '../errors.ts'

export type { ResultGrantSource }

const selector = (signature: string): string =>
  toHex(keccak_256(new TextEncoder().encode(signature)).subarray(0, 4)).slice(2)
const GET_GRANT = selector('getGrant(bytes32)')
const GRANT_NOT_FOUND = selector('GrantNotFound(bytes32)')
const GET_CAPSULE = selector('getCapsule(bytes32)')
const CAPSULE_NOT_FOUND = selector('CapsuleNotFound(bytes32)')
/** `Capsule { policy, registeredAt, revoked, runs, owner, plaintextHash, keyguardKeyId, string cid, bytes keyguardPeerId }`: 9 head words. */
const CAPSULE_HEAD_WORDS = 9
/** The registry's longest CID (`MAX_CID_LENGTH`), with room to spare. */
const MAX_CID_BYTES = 256
/** `Grant { address executor; uint40 runIndex; uint40 expiresAt; bool fastPath; bytes32 capsuleId; bytes32 ephemeralKey }`. */
const GRANT_WORDS = 6

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

/** @throws {InvalidArgumentError} for a quorum outside 1..RPCs or a bad confirmation depth. */
function chainReads(network: DigicapNetwork, options: ChainReadOptions): ChainReads {
  const confirmations = options.confirmations ?? 0
  if (!Number.isSafeInteger(confirmations) || confirmations < 0) {
    throw new InvalidArgumentError('confirmations is a whole number of blocks ≥ 0', {
      details: { confirmations },
    })
  }
  for (const url of options.rpcUrls ?? []) {
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) {
      throw new InvalidArgumentError('rpcUrls are http(s) URLs', {
        details: { got: typeof url === 'string' ? url.slice(0, 8) : typeof url },
      })
    }
  }
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
    const r = await rpcCall(rpcUrl, 'eth_call', [
      { to, data: `0x${GET_GRANT}${toHex(grantId).slice(2)}` },
      blockTag,
    ])
    if (r.error !== undefined) {
      const data = typeof r.error.data === 'string' ? r.error.data.toLowerCase() : ''
      if (data.startsWith(`0x${GRANT_NOT_FOUND}`)) return undefined
      throw new ChainReadError('Grant lookup failed', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), error: r.error.message?.slice(0, 200) },
      })
    }
    const hex = typeof r.result === 'string' ? r.result : ''
    if (!/^0x[0-9a-fA-F]*$/.test(hex) || hex.length !== 2 + GRANT_WORDS * 64) {
      throw new ChainReadError('Grant lookup returned a malformed answer', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), bytes: Math.max(0, (hex.length - 2) / 2) },
        hint: 'Is the network’s accessController address right for this chain?',
      })
    }
    const words = hexToBytes(hex)
    const word = (i: number) => words.subarray(i * 32, i * 32 + 32)
    return {
      executor: word(0).slice(12),
      runIndex: BigInt(toHex(word(1))),
      capsuleId: word(4).slice(),
      ephemeralKey: word(5).slice(),
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
    const malformed = (bytes: number): never => {
      throw new ChainReadError('Capsule lookup returned a malformed answer', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), bytes },
        hint: 'Is the network’s capsuleRegistry address right for this chain?',
      })
    }
    const r = await rpcCall(rpcUrl, 'eth_call', [
      { to, data: `0x${GET_CAPSULE}${toHex(capsuleId).slice(2)}` },
      blockTag,
    ])
    if (r.error !== undefined) {
      const data = typeof r.error.data === 'string' ? r.error.data.toLowerCase() : ''
      if (data.startsWith(`0x${CAPSULE_NOT_FOUND}`)) return undefined
      throw new ChainReadError('Capsule lookup failed', {
        details: { rpcUrl: redactRpcUrl(rpcUrl), error: r.error.message?.slice(0, 200) },
      })
    }
    const hex = typeof r.result === 'string' ? r.result : ''
    if (!/^0x[0-9a-fA-F]*$/.test(hex) || hex.length % 64 !== 2) return malformed(hex.length)
    const b = hexToBytes(hex)
    const num = (at: number): number => {
      if (at + 32 > b.length) return malformed(b.length)
      const w = b.subarray(at, at + 32)
      if (w.subarray(0, 24).some((x) => x !== 0)) return malformed(b.length)
      return Number(BigInt(toHex(w.subarray(24))))
    }
    const tuple = num(0)
    if (tuple + CAPSULE_HEAD_WORDS * 32 > b.length) return malformed(b.length)
    const owner = toHex(b.subarray(tuple + 4 * 32 + 12, tuple + 5 * 32))
    const cidAt = tuple + num(tuple + 7 * 32)
    const cidLength = num(cidAt)
    if (cidLength > MAX_CID_BYTES || cidAt + 32 + cidLength > b.length) return malformed(b.length)
    const cid = new TextDecoder('utf-8', { fatal: true }).decode(
      b.subarray(cidAt + 32, cidAt + 32 + cidLength),
    )
    return { owner, cid }
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
