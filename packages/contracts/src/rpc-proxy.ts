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
