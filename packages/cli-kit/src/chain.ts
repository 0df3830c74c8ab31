/** What an app asks a chain RPC before it writes a config for it. */
import { ChainUnreachableError } from './errors.ts'

/**
 * The chain id `rpcUrl` serves (`eth_chainId`, 5 s at most).
 * @throws {ChainUnreachableError} if it does not answer, or serves another chain than `expected`.
 */
export async function rpcChainId(rpcUrl: string, expected?: number): Promise<number> {
  let chainId: number
  try {
    const res = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(5000),
    })
    const body = (await res.json()) as { result?: unknown }
    if (typeof body.result !== 'string' || !/^0x[0-9a-fA-F]{1,16}$/.test(body.result))
      throw new Error('no chain id in the answer')
    chainId = Number(BigInt(body.result))
  } catch (cause) {
    throw new ChainUnreachableError('The chain RPC does not answer', {
      cause,
      details: { rpcUrl },
    })
  }
  if (expected !== undefined && expected !== chainId) {
    throw new ChainUnreachableError('The RPC serves another chain', {
      details: { expected, got: chainId },
    })
  }
  return chainId
}
