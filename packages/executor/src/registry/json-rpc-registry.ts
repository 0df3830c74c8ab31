/**
 * The registry read of every run (`getCapsule`, the verify stage) as plain JSON-RPC through
 * capsule-core's `rpcCall` (a bare socket for `http:`, ADR 0051), compared by contracts'
 * `createRpcQuorum` at one pinned block as the ethers client did: a one-shot run needs no
 * ethers to verify (ADR 0052). ethers loads for transactions only.
 */
import { ChainReadError, hexToBytes, rpcCall, toHex } from '@digicap/capsule-core/light'
import { createRpcQuorum, type DisagreementEvent, QuorumError } from '@digicap/contracts'
import {
  CAPSULE_NOT_FOUND_SELECTOR,
  decodeGetCapsule,
  decodeGetGrant,
  decodeRunCount,
  GRANT_NOT_FOUND_SELECTOR,
  getCapsuleCallData,
  getGrantCallData,
  runCountCallData,
} from '@digicap/contracts/light'
import type { GrantRecord } from '@digicap/protocol'
import type { JsonRpcApiProvider } from 'ethers'
import { AccessUnavailableError } from '../errors.ts'
import type { RegisteredCapsule } from './types.ts'

/** A generous deadline for one call: a loaded node answers in milliseconds. */
const CALL_TIMEOUT_MS = 30_000

/** Thrown for a JSON-RPC error answer; `data` is the revert data when there is one. */
class RpcErrorAnswer extends ChainReadError {
  readonly revertData: string | undefined
  constructor(rpcUrl: string, method: string, error: { code?: number; data?: unknown }) {
    // The host only: an RPC URL's path or query often holds an API key.
    super(`${method} failed`, {
      details: { rpc: new URL(rpcUrl).host, method, rpcCode: error.code },
    })
    const d = error.data
    const hex = typeof d === 'object' && d !== null ? (d as { data?: unknown }).data : d
    this.revertData = typeof hex === 'string' ? hex : undefined
  }
}

/**
 * What `createRpcQuorum` asks of a provider (`send`, and `_getConnection` for its name in a
 * dissent), over `rpcCall`.
 */
function jsonRpcSender(rpcUrl: string) {
  return {
    async send(method: string, params: unknown[]): Promise<unknown> {
      const { result, error } = await rpcCall(rpcUrl, method, params, CALL_TIMEOUT_MS)
      if (error !== undefined) throw new RpcErrorAnswer(rpcUrl, method, error)
      return result
    },
    _getConnection: () => ({ url: rpcUrl }),
  }
}

export interface JsonRpcCapsuleRegistryInit {
  /** RPCs of one chain; reads go through a quorum of them. */
  readonly rpcUrls: readonly string[]
  readonly capsuleRegistry: string
  /** How many must agree. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
  readonly onDisagreement?: ((event: DisagreementEvent) => void) | undefined
}

/**
 * `ExecutorChain.getCapsule` over JSON-RPC.
 * @throws {AccessUnavailableError} when the registry cannot be read or fewer than the quorum
 * agree (`details.dissent` names the RPCs that did not), as the ethers client did.
 */
export function jsonRpcGetCapsule(
  init: JsonRpcCapsuleRegistryInit,
): (capsuleId: Uint8Array) => Promise<RegisteredCapsule | undefined> {
  const senders = init.rpcUrls.map(jsonRpcSender)
  // The quorum only calls `send` (and names an RPC by `_getConnection`): no ethers provider.
  const rpcs = createRpcQuorum({
    providers: senders as unknown as JsonRpcApiProvider[],
    pinMaxAgeMs: 0, // the registry is read once per run: a fresh pin each time
    ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
    ...(init.onDisagreement === undefined ? {} : { onDisagreement: init.onDisagreement }),
  })
  const to = init.capsuleRegistry.toLowerCase()
  return async (capsuleId) => {
    const data = getCapsuleCallData(capsuleId)
    let found: (Omit<RegisteredCapsule, 'plaintextHash'> & { plaintextHash: string }) | undefined
    try {
      found = await rpcs.read('getCapsule', async ({ index, blockTag }) => {
        const sender = senders[index] as (typeof senders)[number]
        let answer: unknown
        try {
          answer = await sender.send('eth_call', [{ to, data }, blockTag])
        } catch (err) {
          // A revert is an answer: `CapsuleNotFound` says the registry does not know it.
          if (
            err instanceof RpcErrorAnswer &&
            err.revertData?.startsWith(CAPSULE_NOT_FOUND_SELECTOR)
          )
            return undefined
          throw err
        }
        if (typeof answer !== 'string') throw new ChainReadError('eth_call answered no hex value')
        const c = decodeGetCapsule(answer)
        return { ...c, plaintextHash: toHex(c.plaintextHash) }
      })
    } catch (err) {
      throw new AccessUnavailableError('Registry lookup failed', {
        ...(err instanceof QuorumError
          ? { details: { ...err.details }, ...(err.hint === undefined ? {} : { hint: err.hint }) }
          : {}),
        cause: err,
      })
    }
    if (found === undefined) return undefined
    return { ...found, plaintextHash: hexToBytes(found.plaintextHash) }
  }
}

/** What a grant read sends through: `send(method, params)` (an ethers JSON-RPC provider has it). */
export interface JsonRpcSender {
  send(method: string, params: unknown[]): Promise<unknown>
}

export interface JsonRpcGrantReadsInit {
  /**
   * RPCs of one chain, read by plain JSON-RPC (no ethers); reads go through a quorum of them.
   * Or `providers`: senders already open (the ethers node's providers).
   */
  readonly rpcUrls?: readonly string[] | undefined
  readonly providers?: readonly JsonRpcSender[] | undefined
  readonly accessController: string
  /** How many must agree. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
  readonly onDisagreement?: ((event: DisagreementEvent) => void) | undefined
}

/** A grant read: `getGrant` (`undefined` for a grant the controller does not know) and `runCount`. */
export interface GrantReads {
  getGrant(grantId: Uint8Array): Promise<GrantRecord | undefined>
  runCount(capsuleId: Uint8Array): Promise<bigint>
}

/** The revert data of a failed `eth_call`: ours (`RpcErrorAnswer`) or an ethers provider's. */
function revertDataOf(err: unknown): string | undefined {
  if (err instanceof RpcErrorAnswer) return err.revertData
  const data = (err as { data?: unknown } | null)?.data
  return typeof data === 'string' ? data : undefined
}

/**
 * `AccessController.getGrant` and `runCount` over JSON-RPC, by the hand ABI (`@digicap/contracts/light`):
 * the executor's one grant reader. The one-shot node passes `rpcUrls` (a fast-path run finds the
 * grant id its audit was recorded under, ADR 0073, without loading ethers, ADR 0052);
 * `ethersExecutorChain` and `ethersResultGrants` pass their providers.
 * @throws {AccessUnavailableError} when the controller cannot be read or fewer than the quorum
 * agree.
 */
export function jsonRpcGrantReads(init: JsonRpcGrantReadsInit): GrantReads {
  const senders: readonly JsonRpcSender[] =
    init.providers ?? (init.rpcUrls ?? []).map(jsonRpcSender)
  const rpcs = createRpcQuorum({
    providers: senders as unknown as JsonRpcApiProvider[],
    pinMaxAgeMs: 0,
    ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
    ...(init.onDisagreement === undefined ? {} : { onDisagreement: init.onDisagreement }),
  })
  const to = init.accessController.toLowerCase()
  const call = async (index: number, data: string, blockTag: unknown): Promise<string> => {
    const answer = await (senders[index] as JsonRpcSender).send('eth_call', [
      { to, data },
      blockTag,
    ])
    if (typeof answer !== 'string') throw new ChainReadError('eth_call answered no hex value')
    return answer
  }
  const failed = (what: string, err: unknown) =>
    new AccessUnavailableError(what, {
      ...(err instanceof QuorumError
        ? { details: { ...err.details }, ...(err.hint === undefined ? {} : { hint: err.hint }) }
        : {}),
      cause: err,
    })
  return {
    async getGrant(grantId) {
      const data = getGrantCallData(grantId)
      try {
        return await rpcs.read('getGrant', async ({ index, blockTag }) => {
          let answer: string
          try {
            answer = await call(index, data, blockTag)
          } catch (err) {
            // A revert is an answer: `GrantNotFound` says the controller does not know it.
            if (revertDataOf(err)?.startsWith(GRANT_NOT_FOUND_SELECTOR)) return undefined
            throw err
          }
          return decodeGetGrant(answer)
        })
      } catch (err) {
        throw failed('Grant lookup failed', err)
      }
    },
    async runCount(capsuleId) {
      const data = runCountCallData(capsuleId)
      try {
        return await rpcs.read('runCount', async ({ index, blockTag }) =>
          decodeRunCount(await call(index, data, blockTag)),
        )
      } catch (err) {
        throw failed('Run count lookup failed', err)
      }
    },
  }
}
