/**
 * Sends the fast path's audit transactions, one at a time (one operator account, one nonce
 * sequence), batching what queued meanwhile: audits that wait while a transaction is being mined
 * go together in the next one (`recordFastPathGrants`, at most `maxBatch`), so a burst of
 * releases is audited in a few blocks instead of one block per release.
 *
 * The audit rules hold item by item: a batch item the contract skipped, and every item of a batch
 * that did not land as a whole (out of gas, a revert, an RPC failing past its retries), is sent
 * again alone with `recordFastPathGrant`, whose answer is the one that counts (a revert there is
 * final, as before batching). So no item voids another, and none is dropped because of a batch:
 * a skip in a batch (even one caused by the gas the batch was given) is never taken as final.
 * Transient failures (RPC, nonce races) are retried `retries` times with doubling waits; a revert
 * (`errorName`) or an unfunded operator is final at once.
 */
import type { ChainClient, FastPathAuditItem } from '../chain/chain-client.ts'

/** What a recorded audit's transaction said (as `ChainClient.recordFastPathGrant` returns it). */
export type AuditReceipt = Awaited<ReturnType<ChainClient['recordFastPathGrant']>>

export interface AuditSenderInit {
  /** Audits in one transaction at most. Default 16. */
  maxBatch?: number
  /** First wait before re-sending a failed transaction, ms (doubles). Default 200. */
  retryBaseMs?: number
  /** Re-sends of a transaction that failed transiently. Default 4. */
  retries?: number
  /** Tells whether an error is final (not worth a retry). */
  isFinal: (err: unknown) => boolean
}

export interface AuditSender {
  /**
   * Queues one audit; resolves when it is on chain, rejects with the error of its last lone
   * `recordFastPathGrant` (a `ContractRevertError` when it reverted).
   */
  send(item: FastPathAuditItem): Promise<AuditReceipt>
}

interface Waiting {
  item: FastPathAuditItem
  resolve: (r: AuditReceipt) => void
  reject: (err: unknown) => void
}

export function createAuditSender(
  init: AuditSenderInit,
  chain: Pick<ChainClient, 'recordFastPathGrant' | 'recordFastPathGrants'>,
): AuditSender {
  const maxBatch = init.maxBatch ?? 16
  const retries = init.retries ?? 4
  const queue: Waiting[] = []
  let pumping = false

  async function withRetries<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op()
      } catch (err) {
        if (init.isFinal(err) || attempt >= retries) throw err
        await new Promise((r) => setTimeout(r, (init.retryBaseMs ?? 200) * 2 ** attempt))
      }
    }
  }

  async function alone(w: Waiting): Promise<void> {
    try {
      w.resolve(
        await withRetries(() =>
          chain.recordFastPathGrant(w.item.req, w.item.jobParams, w.item.signature),
        ),
      )
    } catch (err) {
      w.reject(err)
    }
  }

  async function together(batch: Waiting[]): Promise<void> {
    let res: Awaited<ReturnType<NonNullable<ChainClient['recordFastPathGrants']>>>
    try {
      res = await withRetries(
        () =>
          chain.recordFastPathGrants?.(batch.map((w) => w.item)) ??
          Promise.reject(new Error('no recordFastPathGrants')),
      )
    } catch {
      // Nothing of the batch is on chain: each audit goes alone, where only its own fate counts.
      for (const w of batch) await alone(w)
      return
    }
    for (const [i, w] of batch.entries()) {
      const outcome = res.outcomes[i]
      if (outcome?.recorded === true) {
        w.resolve({
          grantId: outcome.grantId,
          transactionHash: res.transactionHash,
          blockNumber: res.blockNumber,
          ...(outcome.shortfall === undefined ? {} : { shortfall: outcome.shortfall }),
        })
      } else {
        await alone(w)
      }
    }
  }

  async function pump(): Promise<void> {
    pumping = true
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, maxBatch)
        if (batch.length > 1 && chain.recordFastPathGrants !== undefined) await together(batch)
        else for (const w of batch) await alone(w)
      }
    } finally {
      pumping = false
    }
  }

  return {
    send(item) {
      return new Promise<AuditReceipt>((resolve, reject) => {
        queue.push({ item, resolve, reject })
        if (!pumping) void pump()
      })
    },
  }
}
