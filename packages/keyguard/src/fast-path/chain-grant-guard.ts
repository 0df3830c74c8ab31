/**
 * Keeps `maxRuns(n)` to n keys across the fast path and the chain path (docs/adr/0073).
 *
 * The race it closes: an executor puts a chain-path `requestAccess` in the mempool, then asks
 * the fast path. The fast path's `checkAccess` reads the mined state (the chain grant not in it),
 * releases the key inline and sends the audit; the chain grant is mined first and takes the last
 * run. The audit is then recorded as an overrun (`FastPathOverrun`, the run counted: the key is
 * out), and the chain grant must not be served as well.
 *
 * A chain grant `G` of capsule `C` is served only when, under the fast path's lock of `C` (so no
 * fast-path evaluation of `C` is between its `checkAccess` and its audit being queued):
 * - no fast-path audit of `C` is pending (released, not on chain yet, or failed and waiting for
 *   `recordPending()`): `hold`, the releaser asks again later. Once it lands, it is on chain and
 *   judged below;
 * - and no fast-path grant of `C` after `G` (run index above `G.runIndex`) was recorded as an
 *   overrun (`overrunRunCount(C) - 1 > G.runIndex`): that key went out before `G` is served and its
 *   policy refused it when it landed, so it took a run the chain counted for `G`: `refuse`.
 *
 * Why that is enough: every key released before `G` is then on chain with its own run index. The
 * chain grants and the fast-path grants recorded without an overrun have indexes the policy
 * allowed (below n for `maxRuns(n)`), and an overrun below `G.runIndex` would have made the chain
 * refuse `G`. So with `G` they are at most n. A fast-path key released after this check reads a
 * chain state in which `G` is counted. The check is over-strict on purpose: an overrun for
 * another reason (a date or a reputation crossing its limit) also refuses the chain grants before
 * it, and with several chain grants raced at once all of them are refused; that chain fee comes
 * back through settlement (a run that never happened times out).
 */
import type { ChainClient } from '../chain/chain-client.ts'
import type { KeyedLock, PendingAudits } from './fast-path-gate.ts'

/** What the key releaser does with a chain grant. */
export type ChainGrantVerdict = 'serve' | 'hold' | 'refuse'

export interface ChainGrantGuardParts {
  chain: Pick<ChainClient, 'overrunRunCount'>
  /** The fast path's per-capsule lock (key `c:<capsuleId>`). */
  locks: KeyedLock
  /** The fast path's audits not on chain yet. */
  audits: Pick<PendingAudits, 'busy'>
  /** False until the fast path has re-queued the audits a restart left on disk. */
  ready: () => boolean
  /**
   * Told, under the lock, the run count the chain holds once a served grant is counted
   * (`runIndex + 1`): the fast path then refuses (`chain-lagging`) a read older than that, which
   * a single load-balanced RPC can answer. Without it a stale read after `G` was served could
   * release a key the chain would count past `maxRuns` (review of ADR 0073).
   */
  served?: (capsuleId: string, runCount: bigint) => void
  /**
   * Whether a fast-path audit of the capsule landed but is not `confirmations` deep yet (or was
   * reorged away and is sent again): the grant is held (ADR 0081). Without it an audit counts
   * from its receipt, and a reorg that drops it lets a chain grant take its run.
   */
  unconfirmed?: (capsuleId: string) => Promise<boolean>
}

/** Judges a chain grant of the keyguard's capsules against the fast path's releases. */
export function chainGrantGuard(parts: ChainGrantGuardParts) {
  return async (grant: { capsuleId: string; runIndex: bigint }): Promise<ChainGrantVerdict> => {
    if (!parts.ready()) return 'hold'
    const key = `c:${grant.capsuleId}`
    return parts.locks.run([key], async () => {
      if (parts.audits.busy([key])) return 'hold'
      // A read that fails (an RPC down, no quorum) holds the grant: it is asked again on the next
      // look, as for a pending audit. Thrown out, it ended the grant as release-failed for good.
      let overrun: bigint
      try {
        if (await parts.unconfirmed?.(grant.capsuleId)) return 'hold'
        overrun = await parts.chain.overrunRunCount(grant.capsuleId)
      } catch {
        return 'hold'
      }
      if (overrun > grant.runIndex + 1n) return 'refuse'
      parts.served?.(grant.capsuleId, grant.runIndex + 1n)
      return 'serve'
    })
  }
}
