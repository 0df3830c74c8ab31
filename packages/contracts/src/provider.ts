import {
  JsonRpcProvider,
  Network,
  type Subscriber,
  type Subscription,
  type TransactionReceipt,
} from 'ethers'

/**
 * Watches one transaction's receipt on a timer (every `pollingInterval` ms while someone
 * listens), not on new blocks.
 *
 * ethers' own watcher (`PollingTransactionSubscriber`, 6.17) asks for the receipt once, then
 * again only on each new block its block poller reports, and that poller takes its starting
 * height when it starts. A node that answers `eth_sendRawTransaction` before it mines (anvil
 * does) can mine between ethers' last ask and that starting height: the block is never "new",
 * and on a chain where nothing else is sent (a test, a demo, a quiet devnet) `tx.wait()` never
 * returns. On CI a committee test hung that way for its whole 240 s. Asking on a timer ends the
 * wait one interval after the receipt exists, whatever blocks come or do not.
 */
class ReceiptTimerSubscriber implements Subscriber {
  readonly #provider: JsonRpcProvider
  readonly #hash: string
  pollingInterval: number
  #timer: ReturnType<typeof setTimeout> | undefined
  /** Bumped by stop(): a poll in flight from before a stop/start never schedules a second loop. */
  #run = 0
  #running = false
  /** The chain height when the receipt was last handed to the listeners. */
  #emittedAt: number | undefined

  constructor(provider: JsonRpcProvider, hash: string, pollingInterval: number) {
    this.#provider = provider
    this.#hash = hash
    this.pollingInterval = pollingInterval
  }

  start(): void {
    if (this.#running) return
    this.#running = true
    void this.#poll(this.#run)
  }

  async #poll(run: number): Promise<void> {
    try {
      if (this.#emittedAt === undefined) {
        const receipt = await this.#provider.getTransactionReceipt(this.#hash)
        if (receipt && run === this.#run) this.#emit(receipt, receipt.blockNumber)
      } else {
        // Once seen, the receipt is handed again only when the chain has moved on (a wait for
        // more confirmations counts them then), as ethers does on each block: each hand-over runs
        // ethers' async listener, whose own RPC call's failure nobody catches.
        const height = await this.#provider.getBlockNumber()
        if (height > this.#emittedAt && run === this.#run) {
          const receipt = await this.#provider.getTransactionReceipt(this.#hash)
          if (receipt && run === this.#run) this.#emit(receipt, height)
        }
      }
    } catch {
      // A failed ask is asked again at the next tick, as ethers' block poller would.
    }
    if (run !== this.#run) return
    this.#timer = setTimeout(() => void this.#poll(run), this.pollingInterval)
  }

  #emit(receipt: TransactionReceipt, height: number): void {
    this.#emittedAt = height
    void this.#provider.emit(this.#hash, receipt)
  }

  stop(): void {
    if (!this.#running) return
    this.#running = false
    this.#run++
    clearTimeout(this.#timer)
  }

  pause(): void {
    this.stop()
  }

  resume(): void {
    this.start()
  }
}

/** ethers' JSON-RPC provider with transaction receipts watched on a timer (see above). */
class DigicapJsonRpcProvider extends JsonRpcProvider {
  override _getSubscriber(sub: Subscription): Subscriber {
    if (sub.type === 'transaction') {
      return new ReceiptTimerSubscriber(this, sub.hash, this.pollingInterval)
    }
    return super._getSubscriber(sub)
  }
}

/**
 * A JSON-RPC provider tuned for a known chain: static network, no request cache, no batching,
 * 100 ms polling, and `tx.wait()` that asks for the receipt every 100 ms instead of only on new
 * blocks. ethers' defaults serve stale nonces to back-to-back transactions (NONCE_EXPIRED), cost
 * ~70 ms a call on a local chain, and can wait forever for a transaction mined while the wait
 * started when no block follows it.
 *
 * @example
 * ```ts
 * const provider = createProvider('http://127.0.0.1:8545', 31337n)
 * ```
 */
export function createProvider(url: string, chainId: bigint | number): JsonRpcProvider {
  const network = Network.from(BigInt(chainId))
  return new DigicapJsonRpcProvider(url, network, {
    staticNetwork: network,
    cacheTimeout: -1,
    pollingInterval: 100,
    batchMaxCount: 1,
  })
}
