/** What an app asks a chain RPC before it writes a config for it. */
import { rpcChainId as readChainId } from '@digicap/capsule-core/light'
import { ChainUnreachableError } from './errors.ts'

/**
 * The chain id `rpcUrl` serves (`eth_chainId` through capsule-core's `rpcCall`, 5 s at most).
 * @throws {ChainUnreachableError} if it does not answer, or serves another chain than `expected`.
 */
export async function rpcChainId(rpcUrl: string, expected?: number): Promise<number> {
  let chainId: number
  try {
    chainId = await readChainId(rpcUrl, 5000)
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
