/**
 * `createRpcQuorum`: the {@link RpcQuorum} over ethers v6 JSON-RPC providers.
 *
 * Pinned reads: the pin is the oldest head within `maxLag` blocks of the newest block at
 * least `quorum` RPCs report (the quorum-th highest `eth_blockNumber`), so every RPC that keeps
 * up has it; it is accepted only when at least `quorum` RPCs return the same hash for it; every read then runs at that block (EIP-1898 block hash) on every RPC. Honest RPCs a
 * block apart answer for the same block and agree; a liar serving a forked block or a forged
 * `eth_call` result is outvoted and named.
 */

import { InvalidArgumentError } from '@digicap/capsule-core'
import type { JsonRpcApiProvider } from 'ethers'
import { QuorumError } from '../errors.ts'
import type { PinnedBlock, RpcQuorum, RpcQuorumInit } from './rpc-quorum.ts'
import { agreeAcross, defaultKey, tally } from './tally.ts'

const RETRY_HINT =
  'Retry shortly (an RPC may be lagging or mid-reorg); if it persists, replace the RPC that details.dissent names.'

/** `#<index> <host>`: the host only, since an RPC URL's path or query often holds an API key. */
function rpcName(provider: JsonRpcApiProvider, index: number): string {
  try {
    const url = (provider as { _getConnection?: () => { url: string } })._getConnection?.().url
    return url === undefined ? `#${index}` : `#${index} ${new URL(url).host}`
  } catch {
    return `#${index}`
  }
}

/**
 * Builds an {@link RpcQuorum}.
 *
 * @throws {InvalidArgumentError} for no providers or a quorum outside 1..providers.
 * @example
 * ```ts
 * const rpcs = createRpcQuorum({ providers: urls.map((u) => createProvider(u, 1n)), quorum: 2 })
 * const owner = await rpcs.read('owner', ({ provider, blockTag }) =>
 *   registry.connect(provider).getCapsule(id, { blockTag }).then((c) => c.owner))
 * ```
 */
export function createRpcQuorum(init: RpcQuorumInit): RpcQuorum {
  const providers = [...init.providers]
  const size = providers.length
  if (size === 0) throw new InvalidArgumentError('At least one RPC provider is needed')
  const quorum = init.quorum ?? (size === 1 ? 1 : Math.floor(size / 2) + 1)
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > size) {
    throw new InvalidArgumentError('quorum must be 1..providers.length', {
      details: { quorum, providers: size },
    })
  }
  const maxAgeMs = init.pinMaxAgeMs ?? 1000
  const pinBy = init.pinBy ?? 'hash'
  const maxLag = init.maxLag ?? 2
  if (!Number.isSafeInteger(maxLag) || maxLag < 0) {
    throw new InvalidArgumentError('maxLag must be a whole number of blocks ≥ 0', {
      details: { maxLag },
    })
  }
  const names = providers.map(rpcName)

  /** The pin, when it was taken, and the floor it was taken for. */
  let pinned: { block: PinnedBlock; at: number; floor: number } | undefined
  let floor = 0
  let refreshing: Promise<PinnedBlock> | undefined

  async function heads(): Promise<number[]> {
    const results = await Promise.allSettled(
      providers.map(async (p) => Number(await p.send('eth_blockNumber', []))),
    )
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
    if (ok.length < quorum) {
      const t = tally(results, names, size + 1, String)
      throw new QuorumError(`Fewer than ${quorum} of ${size} RPCs answered eth_blockNumber`, {
        details: { operation: 'eth_blockNumber', quorum, dissent: t.dissent },
        hint: RETRY_HINT,
        cause: t.firstError,
      })
    }
    return ok.sort((a, b) => b - a)
  }

  /** The hash at least `quorum` RPCs return for block `number`, with the dissent. */
  async function agreedHash(number: number) {
    const results = await Promise.allSettled(
      providers.map(async (p) => {
        const b = (await p.send('eth_getBlockByNumber', [`0x${number.toString(16)}`, false])) as {
          hash?: unknown
        } | null
        if (typeof b?.hash !== 'string') throw new Error('block not found')
        return b.hash.toLowerCase()
      }),
    )
    return tally(results, names, quorum, String)
  }

  async function takePin(): Promise<PinnedBlock> {
    const wanted = floor
    const sorted = await heads()
    // The oldest head within `maxLag` of the quorum's head: every RPC that keeps up has it,
    // and a liar claiming an old head can hold the pin back by `maxLag` blocks at most.
    const top = sorted[quorum - 1] as number
    const lagging = Math.min(...sorted.filter((h) => h <= top && h >= top - maxLag))
    // State the caller has seen (its own receipt, a log) must be in the pin when a quorum has it.
    const candidates = [...new Set([Math.max(lagging, Math.min(wanted, top)), lagging])]
    let t: ReturnType<typeof tally<string>> | undefined
    let number = lagging
    for (number of candidates) {
      t = await agreedHash(number)
      if (t.winner !== undefined) {
        if (t.dissent.length > 0) {
          init.onDisagreement?.({ operation: 'block hash', block: number, dissent: t.dissent })
        }
        const block = { number, hash: t.winner.value }
        pinned = { block, at: performance.now(), floor: wanted }
        return block
      }
    }
    throw new QuorumError(
      `Fewer than ${quorum} of ${size} RPCs agree on the hash of block ${number}`,
      {
        details: {
          operation: 'block hash',
          quorum,
          block: number,
          answers: t?.answers,
          dissent: t?.dissent,
        },
        hint: RETRY_HINT,
        cause: t?.firstError,
      },
    )
  }

  function refresh(): Promise<PinnedBlock> {
    refreshing ??= takePin().finally(() => {
      refreshing = undefined
    })
    return refreshing
  }

  async function pin(): Promise<PinnedBlock> {
    const p = pinned
    const age = p === undefined ? Number.POSITIVE_INFINITY : performance.now() - p.at
    // Below the floor is still good when a pin taken for that floor found no quorum above it.
    if (p !== undefined && age < maxAgeMs && (p.block.number >= floor || p.floor >= floor)) {
      if (age >= maxAgeMs / 2) refresh().catch(() => undefined)
      return p.block
    }
    const got = await refresh()
    // The refresh we joined may have started before the floor rose: one more is enough.
    if (got.number < floor && (pinned?.floor ?? 0) < floor) return refresh()
    return got
  }

  function notice(block: number): void {
    if (!Number.isSafeInteger(block) || block <= floor) return
    floor = block
    // Re-pin now, so the read that needs the new state rarely waits for it.
    if (size > 1 && pinned !== undefined && pinned.block.number < floor) {
      refresh().catch(() => undefined)
    }
  }

  return {
    size,
    quorum,
    providers,
    names,

    async read(operation, read, key = defaultKey) {
      if (size === 1) {
        return read({ provider: providers[0] as JsonRpcApiProvider, index: 0, blockTag: 'latest' })
      }
      const block = await pin()
      const blockTag = pinBy === 'hash' ? block.hash : block.number
      const results = await Promise.allSettled(
        providers.map((provider, index) => read({ provider, index, blockTag })),
      )
      const t = tally(results, names, quorum, key)
      if (t.winner !== undefined) {
        if (t.dissent.length > 0) {
          init.onDisagreement?.({ operation, block: block.number, dissent: t.dissent })
        }
        return t.winner.value
      }
      throw new QuorumError(
        `Fewer than ${quorum} of ${size} RPCs agree on ${operation} at block ${block.number}`,
        {
          details: {
            operation,
            quorum,
            block: block.number,
            answers: t.answers,
            dissent: t.dissent,
          },
          hint: RETRY_HINT,
          cause: t.firstError,
        },
      )
    },

    agree(operation, read, key = defaultKey) {
      const p = { names, quorum, operation, hint: RETRY_HINT, onDisagreement: init.onDisagreement }
      return agreeAcross(providers, p, read, key)
    },

    async head() {
      if (size === 1) return (providers[0] as JsonRpcApiProvider).getBlockNumber()
      return (await heads())[quorum - 1] as number
    },

    async pin() {
      if (size > 1) return pin()
      // One RPC reads at `latest`; this is only what `latest` is now.
      const b = await (providers[0] as JsonRpcApiProvider).getBlock('latest')
      if (b?.hash == null) throw new QuorumError('The RPC returned no latest block')
      return { number: b.number, hash: b.hash.toLowerCase() }
    },

    notice,
  }
}
