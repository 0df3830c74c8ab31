/**
 * One Ethereum JSON-RPC call (a bare HTTP/1.1 POST for `http:` URLs, `fetch` for the others), with a deadline: the one copy every package that
 * asks a chain something without ethers uses (the SDK's receive path, the CLIs' chain-id check
 * before they write a config).
 */
import { ChainReadError } from '../errors.ts'
import { httpPostJson } from './http-post.ts'

/** POSTs a JSON body: over a bare socket for `http:` (no undici to load, ADR 0051), else `fetch`. */
async function post(
  rpcUrl: string,
  body: string,
  timeoutMs: number,
): Promise<{ status: number; json: () => Promise<unknown> }> {
  const url = new URL(rpcUrl)
  if (url.protocol === 'http:') {
    const answer = await httpPostJson(url, body, timeoutMs)
    return { status: answer.status, json: async () => JSON.parse(answer.body) }
  }
  return fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  })
}

/**
 * An RPC URL as errors and logs may print it: scheme and host only. A hosted RPC's URL holds
 * its credentials in the userinfo (`user:pass@`), the path (`/v3/<api key>`) or the query.
 * @example
 * ```ts
 * redactRpcUrl('https://u:p@rpc.example/v3/KEY') // 'https://rpc.example'
 * ```
 */
export function redactRpcUrl(rpcUrl: string): string {
  try {
    const u = new URL(rpcUrl)
    return `${u.protocol}//${u.host}`
  } catch {
    return '(not a URL)'
  }
}

/** A JSON-RPC answer: a `result`, or an `error`. */
export interface RpcAnswer {
  result?: unknown
  error?: { code?: number; message?: string; data?: unknown }
}

/**
 * Calls `method` on `rpcUrl`.
 * @throws {ChainReadError} when it does not answer in `timeoutMs`, or not with JSON-RPC.
 * @example
 * ```ts
 * const { result } = await rpcCall('http://127.0.0.1:8545', 'eth_blockNumber', [])
 * ```
 */
export async function rpcCall(
  rpcUrl: string,
  method: string,
  params: unknown[],
  timeoutMs = 10_000,
): Promise<RpcAnswer> {
  const payload = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })
  let answer: { status: number; json: () => Promise<unknown> }
  try {
    answer = await post(rpcUrl, payload, timeoutMs)
  } catch (cause) {
    throw new ChainReadError('The RPC did not answer', {
      cause,
      details: { rpcUrl: redactRpcUrl(rpcUrl), method },
    })
  }
  const body = (await answer.json().catch(() => undefined)) as RpcAnswer | undefined
  if (typeof body !== 'object' || body === null || (!('result' in body) && !('error' in body))) {
    throw new ChainReadError('The RPC answered with no JSON-RPC result', {
      details: { rpcUrl: redactRpcUrl(rpcUrl), method, status: answer.status },
    })
  }
  return body
}

/**
 * The chain id `rpcUrl` serves (`eth_chainId`).
 * @throws {ChainReadError} when it does not answer, or not with a chain id.
 */
export async function rpcChainId(rpcUrl: string, timeoutMs = 10_000): Promise<number> {
  const { result } = await rpcCall(rpcUrl, 'eth_chainId', [], timeoutMs)
  if (typeof result !== 'string' || !/^0x[0-9a-fA-F]{1,16}$/.test(result)) {
    throw new ChainReadError('eth_chainId answered no chain id', {
      details: {
        rpcUrl: redactRpcUrl(rpcUrl),
        result: typeof result === 'string' ? result.slice(0, 40) : typeof result,
      },
    })
  }
  return Number(BigInt(result))
}
