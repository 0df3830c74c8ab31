/**
 * Reads several RPCs of one chain must agree on, over plain JSON-RPC (capsule-core's
 * `rpcCall`): the ethers-free counterpart of `createRpcQuorum`, for the paths that load no
 * ethers (`pi-node seal`'s check of its policy's code, the SDK's receiver). Same counting
 * (`tally`), same default quorum, same `#<index> <host>` names (never a URL's credentials).
 */
import { InvalidArgumentError, rpcCall } from '@digicap/capsule-core'
import { QuorumError } from '../errors.ts'
import type { DisagreementEvent } from '../quorum/rpc-quorum.ts'
import { agreeAcross, defaultKey } from '../quorum/tally.ts'

export interface JsonRpcQuorumInit {
  /** The RPC URLs of one chain. */
  readonly rpcUrls: readonly string[]
  /** How many must give the same answer. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number
  /** Deadline of each call, ms. Default 10 000. */
  readonly timeoutMs?: number
  /** Told when a quorum answered but some RPCs dissented (one of them lies or lags). */
  readonly onDisagreement?: (event: DisagreementEvent) => void
}

export interface JsonRpcQuorum {
  readonly size: number
  readonly quorum: number
  /** `#<index> <host>` of each RPC, as errors name them. */
  readonly names: readonly string[]
  /**
   * Runs `read` on every RPC and returns the answer at least `quorum` of them gave (compared
   * by `key`). With one RPC, its answer (nothing to compare).
   * @throws {QuorumError} when no answer reaches the quorum; `details.dissent` names the RPCs.
   */
  agree<T>(
    operation: string,
    read: (rpcUrl: string, index: number) => Promise<T>,
    key?: (value: T) => string,
  ): Promise<T>
  /** `method(params)` on every RPC, its `result` (an RPC error counts as that RPC failing). */
  call(method: string, params: unknown[]): Promise<unknown>
  /** The newest block at least `quorum` RPCs have (the quorum-th highest head). */
  head(): Promise<bigint>
}

/** `#<index> <host>`: the host only, since an RPC URL's userinfo, path or query often holds an API key. */
export function rpcUrlName(rpcUrl: string, index?: number): string {
  let host = '?'
  try {
    host = new URL(rpcUrl).host
  } catch {}
  return index === undefined ? host : `#${index} ${host}`
}

/**
 * Builds a {@link JsonRpcQuorum}.
 * @throws {InvalidArgumentError} for no RPC URL or a quorum outside 1..rpcUrls.length.
 * @example
 * ```ts
 * const rpcs = jsonRpcQuorum({ rpcUrls: [a, b, c] })
 * const code = await rpcs.call('eth_getCode', [policy, 'latest'])
 * ```
 */
export function jsonRpcQuorum(init: JsonRpcQuorumInit): JsonRpcQuorum {
  const urls = [...init.rpcUrls]
  const size = urls.length
  if (size === 0) throw new InvalidArgumentError('At least one RPC URL is needed')
  const quorum = init.quorum ?? (size === 1 ? 1 : Math.floor(size / 2) + 1)
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > size) {
    throw new InvalidArgumentError('quorum must be 1..rpcUrls.length', {
      details: { quorum, rpcs: size },
    })
  }
  const names = urls.map((u, i) => rpcUrlName(u, i))
  const timeoutMs = init.timeoutMs ?? 10_000
  const one = async (url: string, method: string, params: unknown[]): Promise<unknown> => {
    const answer = await rpcCall(url, method, params, timeoutMs)
    if (answer.error !== undefined) {
      throw new QuorumError(`${method} failed`, {
        details: { method, code: answer.error.code, message: answer.error.message?.slice(0, 200) },
      })
    }
    return answer.result
  }
  const hint =
    'Retry shortly (an RPC may be lagging); if it persists, replace the RPC that details.dissent names.'
  const agree: JsonRpcQuorum['agree'] = (operation, read, key = defaultKey) =>
    agreeAcross(
      urls,
      { names, quorum, operation, hint, onDisagreement: init.onDisagreement },
      read,
      key,
    )
  return {
    size,
    quorum,
    names,
    agree,
    call: (method, params) => agree(method, (url) => one(url, method, params)),
    async head() {
      const heads = await Promise.allSettled(
        urls.map(async (u) => {
          const r = await one(u, 'eth_blockNumber', [])
          if (typeof r !== 'string' || !/^0x[0-9a-fA-F]+$/.test(r)) {
            throw new QuorumError('eth_blockNumber answered no number')
          }
          return BigInt(r)
        }),
      )
      const known = heads
        .flatMap((h) => (h.status === 'fulfilled' ? [h.value] : []))
        .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))
      const at = known[quorum - 1]
      if (at === undefined) {
        throw new QuorumError(`Fewer than ${quorum} of ${size} RPCs answered eth_blockNumber`, {
          details: { quorum, answered: known.length },
        })
      }
      return at
    },
  }
}
