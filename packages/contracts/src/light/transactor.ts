/**
 * A private key's transactions over plain JSON-RPC: nonce, gas and fees asked of the RPC, an
 * EIP-1559 transaction signed with micro-eth-signer (noble's, on the same curves copy as
 * capsule-core), sent, and its receipt awaited. What `pi-node seal` sends (a policy deployment
 * and a registration) without loading ethers, whose 180 modules cost the seal ~30 MiB of its
 * 128 MiB bound. A revert is decoded by the same code as the ethers paths, loaded only then.
 */
import {
  type Address,
  type Hex,
  normalizeAddress,
  privateKeySigner,
  redactRpcUrl,
  rpcCall,
  toHex,
} from '@digicap/capsule-core'
import { Transaction } from 'micro-eth-signer'
import { ContractRevertError, TransactionError } from '../errors.ts'

/** One transaction to send: a call (`to`) or a contract creation (no `to`). */
export interface TransactionRequest {
  readonly to?: string
  readonly data: Uint8Array
  readonly value?: bigint
}

/** A mined transaction that did not revert. */
export interface MinedTransaction {
  readonly hash: Hex
  /** The nonce the transaction was signed with: a creation's address follows from it (`createAddress`). */
  readonly nonce: bigint
  readonly blockNumber: bigint
  readonly gasUsed: bigint
  /** The created contract's address as the receipt names it (a creation only; the RPC's word). */
  readonly contractAddress?: Address
}

/** Sends transactions from one account and waits for them to be mined. */
export interface KeyTransactor {
  readonly address: Address
  /** The RPC it sends through, when it has one (the default for reads that check its work). */
  readonly rpcUrl?: string
  /**
   * Sends `tx` and waits for its receipt.
   * @throws {ContractRevertError} when the call reverts (at gas estimation, or mined with status 0).
   * @throws {TransactionError} when the RPC refuses it or no receipt comes in time.
   */
  send(tx: TransactionRequest): Promise<MinedTransaction>
}

export interface PrivateKeyTransactorInit {
  readonly rpcUrl: string
  /** The chain the transactions are signed for (EIP-155); the RPC must serve it. */
  readonly chainId: number | bigint
  /** The account's 32-byte secp256k1 key; the caller zeroes it after use. */
  readonly privateKey: Uint8Array
  /** Deadline of each RPC call, ms. Default 10 000. */
  readonly rpcTimeoutMs?: number
  /** How long to wait for the receipt, ms. Default 120 000. */
  readonly receiptTimeoutMs?: number
  /** How often to ask for the receipt, ms. Default 100. */
  readonly pollMs?: number
}

/** ethers' default when the RPC has no `eth_maxPriorityFeePerGas`: 1 gwei. */
const DEFAULT_PRIORITY_FEE = 1_000_000_000n

const quantity = (n: bigint): Hex => `0x${n.toString(16)}`

function bigintOf(value: unknown, what: string, method: string): bigint {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]+$/.test(value)) {
    throw new TransactionError('The RPC answered with no number', {
      details: { method, field: what, got: typeof value },
    })
  }
  return BigInt(value)
}

/** The revert data in a JSON-RPC error's `data` (a hex string, or nested one level as geth does). */
function revertDataOf(data: unknown): string | undefined {
  if (typeof data === 'string' && /^0x[0-9a-fA-F]*$/.test(data)) return data
  if (data && typeof data === 'object' && typeof (data as { data?: unknown }).data === 'string') {
    return revertDataOf((data as { data: string }).data)
  }
  return undefined
}

/** A revert, decoded against every Digicap contract's errors (ethers' ABI coder, loaded now). */
async function revertError(
  data: string | undefined,
  details: Record<string, unknown>,
): Promise<ContractRevertError> {
  const { decodeRevert } = await import('../revert.ts')
  const decoded = decodeRevert({ code: 'CALL_EXCEPTION', data })
  return decoded instanceof ContractRevertError
    ? decoded
    : new ContractRevertError({ errorName: undefined, args: [], data }, { details })
}

/**
 * A {@link KeyTransactor} for `privateKey` over `rpcUrl`'s JSON-RPC: nonce from the pending
 * count, gas from `eth_estimateGas` (a revert shows there, decoded), fees as ethers sets them
 * (max fee = 2 × the latest base fee + the priority fee). Transactions of one account must be
 * sent one at a time (the nonce is read per transaction): serialize them, e.g. under the
 * owner's transaction lock.
 *
 * @example
 * ```ts
 * const tx = privateKeyTransactor({ rpcUrl, chainId: 31337, privateKey })
 * const { hash } = await tx.send({ to: registry, data: registerCapsuleCallData(entry) })
 * ```
 */
export function privateKeyTransactor(init: PrivateKeyTransactorInit): KeyTransactor {
  const address = privateKeySigner(init.privateKey).address
  const rpcTimeoutMs = init.rpcTimeoutMs ?? 10_000
  const call = async (method: string, params: unknown[]): Promise<unknown> => {
    const answer = await rpcCall(init.rpcUrl, method, params, rpcTimeoutMs)
    if (answer.error !== undefined) {
      throw new TransactionError('The RPC refused the request', {
        details: { method, code: answer.error.code, message: answer.error.message },
      })
    }
    return answer.result
  }
  const estimateGas = async (request: Record<string, unknown>): Promise<bigint> => {
    const answer = await rpcCall(init.rpcUrl, 'eth_estimateGas', [request], rpcTimeoutMs)
    if (answer.error !== undefined) {
      const data = revertDataOf(answer.error.data)
      if (data !== undefined || /revert/i.test(answer.error.message ?? '')) {
        throw await revertError(data, { method: 'eth_estimateGas', to: request.to })
      }
      throw new TransactionError('The RPC could not estimate the gas', {
        details: { code: answer.error.code, message: answer.error.message },
      })
    }
    return bigintOf(answer.result, 'gas', 'eth_estimateGas')
  }
  const receiptOf = async (hash: Hex): Promise<Record<string, unknown>> => {
    const deadline = performance.now() + (init.receiptTimeoutMs ?? 120_000)
    for (;;) {
      const receipt = await call('eth_getTransactionReceipt', [hash])
      if (receipt && typeof receipt === 'object') return receipt as Record<string, unknown>
      if (performance.now() > deadline) {
        throw new TransactionError('The transaction was not mined in time', {
          details: { hash, ms: init.receiptTimeoutMs ?? 120_000 },
          hint: 'It may still be mined: look it up before sending it again.',
        })
      }
      await new Promise((r) => setTimeout(r, init.pollMs ?? 100))
    }
  }
  return {
    address,
    rpcUrl: init.rpcUrl,
    async send(tx) {
      const to = tx.to === undefined ? undefined : normalizeAddress(tx.to, 'to')
      const value = tx.value ?? 0n
      const data = toHex(tx.data)
      const request = {
        from: address,
        ...(to === undefined ? {} : { to }),
        data,
        value: quantity(value),
      }
      const [nonce, gasLimit, block, priority] = await Promise.all([
        call('eth_getTransactionCount', [address, 'pending']),
        estimateGas(request),
        call('eth_getBlockByNumber', ['latest', false]),
        rpcCall(init.rpcUrl, 'eth_maxPriorityFeePerGas', [], rpcTimeoutMs),
      ])
      const baseFee = (block as { baseFeePerGas?: unknown } | null)?.baseFeePerGas
      if (baseFee === undefined) {
        throw new TransactionError('The chain has no EIP-1559 base fee', {
          details: { rpcUrl: redactRpcUrl(init.rpcUrl) },
          hint: 'This path sends EIP-1559 transactions only.',
        })
      }
      const maxPriorityFeePerGas =
        priority.error === undefined
          ? bigintOf(priority.result, 'maxPriorityFeePerGas', 'eth_maxPriorityFeePerGas')
          : DEFAULT_PRIORITY_FEE
      const signedNonce = bigintOf(nonce, 'nonce', 'eth_getTransactionCount')
      const signed = Transaction.prepare({
        type: 'eip1559',
        chainId: BigInt(init.chainId),
        nonce: signedNonce,
        to: to ?? '0x',
        value,
        data,
        gasLimit,
        maxPriorityFeePerGas,
        maxFeePerGas:
          2n * bigintOf(baseFee, 'baseFeePerGas', 'eth_getBlockByNumber') + maxPriorityFeePerGas,
      }).signBy(init.privateKey, false) // RFC 6979, as ethers: one transaction, one signature
      const hash = signed.hash as Hex
      const sent = await call('eth_sendRawTransaction', [signed.toHex()])
      if (typeof sent !== 'string' || sent.toLowerCase() !== hash.toLowerCase()) {
        throw new TransactionError('The RPC answered with another transaction hash', {
          details: { expected: hash, got: String(sent) },
        })
      }
      const receipt = await receiptOf(hash)
      if (receipt.status !== '0x1') {
        throw await revertError(undefined, { hash, status: receipt.status })
      }
      const created = receipt.contractAddress
      return {
        hash,
        nonce: signedNonce,
        blockNumber: bigintOf(receipt.blockNumber, 'blockNumber', 'eth_getTransactionReceipt'),
        gasUsed: bigintOf(receipt.gasUsed, 'gasUsed', 'eth_getTransactionReceipt'),
        ...(typeof created === 'string' ? { contractAddress: normalizeAddress(created) } : {}),
      }
    },
  }
}
