/**
 * The chain reads of `status` as plain JSON-RPC (capsule-core's `rpcCall`): the head, two
 * balances and `CapsuleRegistry.isOperator`. ethers (126 modules) is not loaded for them, so
 * `pi-node status` starts in about the time of node itself (ADR 0042).
 */
import {
  ChainReadError,
  InvalidArgumentError,
  redactRpcUrl,
  rpcCall,
} from '@digicap/capsule-core/light'
import { type OperatorStatus, withOperatorWarning } from '../operator/operator-status.ts'

/** `isOperator(address,address)`'s selector; test/status-chain.test.ts checks it against the ABI. */
export const IS_OPERATOR_SELECTOR = '0xb6363cf2'

const TIMEOUT_MS = 5000

/** One call's hex result. @throws {ChainReadError} for an RPC error or a non-hex result. */
async function hexResult(rpcUrl: string, method: string, params: unknown[]): Promise<string> {
  const { result, error } = await rpcCall(rpcUrl, method, params, TIMEOUT_MS)
  if (error !== undefined) {
    throw new ChainReadError(`${method} failed`, {
      details: {
        rpcUrl: redactRpcUrl(rpcUrl),
        method,
        rpcCode: error.code,
        rpcMessage: error.message?.slice(0, 200),
      },
    })
  }
  if (typeof result !== 'string' || !/^0x[0-9a-fA-F]*$/.test(result)) {
    throw new ChainReadError(`${method} answered no hex value`, {
      details: { rpcUrl: redactRpcUrl(rpcUrl), method },
    })
  }
  return result
}

/** The head block's number. */
export async function headBlock(rpcUrl: string): Promise<number> {
  return Number(BigInt(await hexResult(rpcUrl, 'eth_blockNumber', [])))
}

/** `address`'s balance in wei, at the head. */
export async function balanceOf(rpcUrl: string, address: string): Promise<bigint> {
  return BigInt(await hexResult(rpcUrl, 'eth_getBalance', [rpcAddress(address), 'latest']))
}

/**
 * An address as the RPC takes it: 0x and 40 hex digits, lower-cased. The addresses here come
 * from the config and the owner file, both checked when read; no checksum is computed, so
 * `status` loads no Keccak (ADR 0051).
 * @throws {InvalidArgumentError} for anything else.
 */
function rpcAddress(address: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new InvalidArgumentError('Not an address', { details: { address: String(address) } })
  }
  return address.toLowerCase()
}

const word = (address: string) => rpcAddress(address).slice(2).padStart(64, '0')

/**
 * `CapsuleRegistry.isOperator(owner, operator)` at the head.
 * @throws {ChainReadError} if the answer is not one ABI word (no contract at `registry`).
 */
export async function isOperator(
  rpcUrl: string,
  registry: string,
  owner: string,
  operator: string,
): Promise<boolean> {
  const data = `${IS_OPERATOR_SELECTOR}${word(owner)}${word(operator)}`
  const call = { to: rpcAddress(registry), data }
  const out = await hexResult(rpcUrl, 'eth_call', [call, 'latest'])
  if (out.length !== 66) {
    throw new ChainReadError('isOperator answered no bool (is the registry deployed?)', {
      details: { rpcUrl: redactRpcUrl(rpcUrl), registry, bytes: (out.length - 2) / 2 },
    })
  }
  return BigInt(out) !== 0n
}

/** The operator's approval by `owner` and its balance, with what is missing. */
export async function readOperatorStatus(
  rpcUrl: string,
  registry: string,
  owner: string,
  operator: string,
): Promise<OperatorStatus> {
  const [approved, balance] = await Promise.all([
    isOperator(rpcUrl, registry, owner, operator),
    balanceOf(rpcUrl, operator),
  ])
  return withOperatorWarning({ address: operator, approved, balanceWei: balance.toString() })
}
