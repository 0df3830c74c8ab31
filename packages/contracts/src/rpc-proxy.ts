import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One JSON-RPC call as the proxy saw it. */
export interface RpcCall {
  readonly method: string
  readonly params: readonly unknown[]
}

/**
 * Changes an upstream answer: return the `result` to send instead (the upstream one to pass it
 * through). Throwing sends a JSON-RPC error.
 */
export type RpcRewrite = (call: RpcCall, result: unknown) => unknown

export interface RpcProxy {
  readonly url: string
  /** Calls seen so far, by method. */
  readonly counts: ReadonlyMap<string, number>
  close(): Promise<void>
}

/**
 * A JSON-RPC proxy on 127.0.0.1 in front of a real node, for fault injection in tests: a lying
 * RPC (`rewrite` changes a result) or a counted one (how many round trips a client makes).
 *
 * @example
 * ```ts
 * const liar = await startRpcProxy(anvil.rpcUrl, (call, result) =>
 *   call.method === 'eth_call' ? `0x${'00'.repeat(31)}01` : result)
 * ```
 */
export async function startRpcProxy(
  upstream: string,
  rewrite: RpcRewrite = (_call, result) => result,
): Promise<RpcProxy> {
  const counts = new Map<string, number>()
  const one = async (body: { id: unknown; method: string; params?: unknown[] }) => {
    counts.set(body.method, (counts.get(body.method) ?? 0) + 1)
    const answer = (await (
      await fetch(upstream, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    ).json()) as { result?: unknown; error?: unknown }
    if (!('result' in answer)) return answer
    try {
      const result = await rewrite(
        { method: body.method, params: body.params ?? [] },
        answer.result,
      )
      return { ...answer, result }
    } catch (err) {
      return { jsonrpc: '2.0', id: body.id, error: { code: -32000, message: String(err) } }
    }
  }
  const server: Server = createServer(async (req, res) => {
    let text = ''
    for await (const chunk of req) text += chunk
    try {
      const body = JSON.parse(text)
      const out = Array.isArray(body) ? await Promise.all(body.map(one)) : await one(body)
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(out))
    } catch (err) {
      res.statusCode = 502
      res.end(String(err))
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A lagging log index to put behind {@link startRpcProxy}; move `indexed` to make it lag or catch up. */
export interface LaggingLogIndex {
  /** The newest block the index has (`Infinity`: no lag). */
  indexed: number
  readonly rewrite: RpcRewrite
}

/**
 * The fault of a load-balanced RPC whose `eth_getLogs` backend lags behind the node that serves
 * the head (ADR 0085): a range read answers only the logs of blocks up to `indexed` (`[]` for
 * the others, no error), a read by block hash (EIP-234) of a block above it fails, as geth
 * answers a hash it does not have. `lookup` reads a block's number by hash from the real node.
 *
 * @example
 * ```ts
 * const lag = laggingLogIndex((hash) => anvil.provider.getBlock(hash).then((b) => b?.number))
 * const proxy = await startRpcProxy(anvil.rpcUrl, lag.rewrite)
 * lag.indexed = await anvil.provider.getBlockNumber() // logs of later blocks are withheld
 * ```
 */
export function laggingLogIndex(
  lookup: (blockHash: string) => Promise<number | undefined>,
): LaggingLogIndex {
  const lag: LaggingLogIndex = {
    indexed: Number.POSITIVE_INFINITY,
    rewrite: async (call, result) => {
      if (call.method !== 'eth_getLogs') return result
      const filter = call.params[0] as { blockHash?: string }
      if (filter.blockHash !== undefined) {
        const number = await lookup(filter.blockHash)
        if (number === undefined || number > lag.indexed) throw new Error('unknown block')
        return result
      }
      return (result as { blockNumber: string }[]).filter(
        (l) => Number(l.blockNumber) <= lag.indexed,
      )
    },
  }
  return lag
}
