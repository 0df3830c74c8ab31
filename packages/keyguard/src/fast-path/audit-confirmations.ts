/**
 * Fast-path audits that landed but are not `confirmations` deep yet (docs/adr/0081).
 *
 * A receipt is one block deep: a reorg can take the audit's block away, and with it the run the
 * chain counted for a key that is already out. A chain-path request of the same capsule can then
 * take that run index in the new blocks. So the chain grant guard holds a chain grant of capsule
 * `C` while an audit of `C` is recorded here and not yet found, by its `AccessGranted` log (same
 * executor and ephemeral key, `fastPath`), at least `confirmations` blocks below the head. An
 * audit that is neither in the logs nor on chain at all (its request's nonce unused) has been
 * reorged away: it is sent again (`audit-reorged`, the operator's nonce counted afresh: the
 * dropped transaction left a gap), and lands as an overrun if the chain grant took its run
 * (ADR 0073), which then refuses the chain grant. The re-send goes through the fast path's own
 * record path (`resend`), so a re-send that reverts cuts its executor off like a first revert
 * (ADR 0072) and keeps holding the capsule's chain grants.
 *
 * Forgotten unchecked once `horizonBlocks` below the confirmed block (not the newest receipt).
 * Each audit confirmed (or forgotten) is told to `onConfirmed`: the fast path keeps the audit's
 * file until then, and re-tracks it at a restart (ADR 0081 amendment).
 */
import { getAddress } from 'ethers'
import type { ChainClient, FastPathAuditItem } from '../chain/chain-client.ts'
import { confirmedBlock, type Finality } from '../chain/confirmed-block.ts'

export interface AuditConfirmationsInit {
  /** Blocks an audit's log must be buried under before it counts (the keyguard's). */
  confirmations: number
  /** And at or below the chain's block of this tag (the keyguard's `finality`, ADR 0082). */
  finality?: Finality
  /** How far below its receipt's block a re-included audit is looked for. Default 64. */
  searchBlocks?: number
  /**
   * Audits whose receipt is this many blocks below the confirmed block (`confirmations` below the
   * head and at or below the `finality` tag's block, as `unconfirmed()` computes it) are
   * forgotten unchecked (confirmed by age: a deeper reorg is outside what the keyguard defends).
   * Never counted from the newest receipt: on a chain whose finalized block trails the head by
   * more than this, that would forget audits that are not final yet. Default 256.
   */
  horizonBlocks?: number
}

/** One audit whose receipt came back. */
export interface LandedAudit {
  /** The fast path's grant id (what the executor was answered), for events. */
  grantId: string
  /** The audit's journal id (its file), handed back to `resend` and `onConfirmed`. */
  id?: string
  item: FastPathAuditItem
  /** The receipt's block. */
  blockNumber: number
}

export interface AuditConfirmationsParts {
  chain: Pick<
    ChainClient,
    'blockNumber' | 'grantLogs' | 'nonceUsed' | 'resyncNonce' | 'taggedBlock'
  >
  /**
   * Sends an audit again (the fast path's record path): `recorded` once it is on chain again and
   * `landed()` was told so (this entry is then dropped for the new one); `reverted` when it failed
   * for good (a key is out that the chain does not count: it keeps holding the capsule's chain
   * grants); `failed` for a transient failure (looked at again at the next check).
   */
  resend: (audit: LandedAudit) => Promise<'recorded' | 'reverted' | 'failed'>
  /** Told when an audit was found reorged away and is sent again. */
  onReorged?: (audit: { grantId: string; capsuleId: string; executor: string }) => void
  /** Told when an audit is confirmed (or forgotten by age): it is no longer tracked. */
  onConfirmed?: (audit: LandedAudit) => void
}

export interface AuditConfirmations {
  /** Records an audit whose receipt came back. */
  landed(audit: LandedAudit): void
  /**
   * Whether an audit of `capsuleId` is not `confirmations` deep yet (or was reorged away and is
   * being sent again, or was lost): the chain grant guard then holds the chain grant. Forgets the
   * confirmed ones; re-sends the vanished ones.
   * @throws for RPC failures (the caller holds and asks again).
   */
  unconfirmed(capsuleId: string): Promise<boolean>
  /** Audits tracked. */
  size(): number
}

interface Tracked extends LandedAudit {
  capsuleId: string
  executor: string
  ephemeralKey: string
  resending?: Promise<void> | undefined
  /** Sent again and reverted for good: never confirmed, holds the capsule's chain grants. */
  lost?: boolean
}

export function auditConfirmations(init: AuditConfirmationsInit) {
  return (parts: AuditConfirmationsParts): AuditConfirmations => {
    const confirmed = confirmedBlock(
      {
        confirmations: Math.max(0, Math.floor(init.confirmations)),
        ...(init.finality === undefined ? {} : { finality: init.finality }),
      },
      parts.chain,
    )
    const search = init.searchBlocks ?? 64
    const horizon = init.horizonBlocks ?? 256
    const byCapsule = new Map<string, Tracked[]>()
    /** The highest confirmed block computed so far (-1: none yet). */
    let safeSeen = -1
    /** A background read of the confirmed block in flight (at most one). */
    let refreshing = false

    const forget = (a: Tracked): void => {
      const list = byCapsule.get(a.capsuleId)
      if (list === undefined) return
      const i = list.indexOf(a)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) byCapsule.delete(a.capsuleId)
    }

    function prune(): void {
      for (const list of [...byCapsule.values()]) {
        for (const a of [...list]) {
          if (!a.lost && a.resending === undefined && a.blockNumber < safeSeen - horizon) {
            forget(a)
            parts.onConfirmed?.(a)
          }
        }
      }
    }

    const sawSafe = (safe: number): void => {
      if (safe > safeSeen) safeSeen = safe
      prune()
    }

    /** Reads the confirmed block in the background and prunes (bounds memory between checks). */
    function refresh(): void {
      if (refreshing) return
      refreshing = true
      parts.chain
        .blockNumber()
        .then((head) => confirmed(head))
        .then(sawSafe, () => undefined)
        .finally(() => {
          refreshing = false
        })
    }

    function resend(a: Tracked): void {
      const who = { grantId: a.grantId, capsuleId: a.capsuleId, executor: a.executor }
      parts.onReorged?.(who)
      // The dropped transaction's nonce is free again: count from the chain's pending nonce.
      parts.chain.resyncNonce?.()
      a.resending = parts.resend(a).then(
        (outcome) => {
          a.resending = undefined
          // Recorded again: `landed()` tracks it anew (or found it landed by itself).
          if (outcome === 'recorded') forget(a)
          else if (outcome === 'reverted') a.lost = true
        },
        () => {
          a.resending = undefined
        },
      )
    }

    /** Whether `a` still holds chain grants; forgets it once confirmed. */
    async function check(a: Tracked, safe: number): Promise<boolean> {
      if (a.lost || a.resending !== undefined) return true
      if (safe < a.blockNumber) return true
      const logs = await parts.chain.grantLogs(Math.max(0, a.blockNumber - search), safe, [
        a.capsuleId,
      ])
      const found = logs.some(
        (l) => l.fastPath && l.executor === a.executor && l.ephemeralKey === a.ephemeralKey,
      )
      if (found) {
        forget(a)
        parts.onConfirmed?.(a)
        return false
      }
      // On chain at another block, not deep enough yet: hold, look again later.
      if (await parts.chain.nonceUsed(a.executor, a.capsuleId, a.item.req.nonce)) return true
      resend(a)
      return true
    }

    return {
      landed(audit) {
        const r = audit.item.req
        const capsuleId = r.capsuleId.toLowerCase()
        const tracked: Tracked = {
          ...audit,
          capsuleId,
          executor: getAddress(r.executor),
          ephemeralKey: r.ephemeralKey.toLowerCase(),
        }
        const list = byCapsule.get(capsuleId) ?? []
        list.push(tracked)
        byCapsule.set(capsuleId, list)
        prune()
        refresh()
      },

      async unconfirmed(capsuleId) {
        const list = byCapsule.get(capsuleId.toLowerCase())
        if (list === undefined || list.length === 0) return false
        const safe = await confirmed(await parts.chain.blockNumber())
        sawSafe(safe)
        let hold = false
        for (const a of [...list]) if (await check(a, safe)) hold = true
        return hold
      },

      size() {
        let n = 0
        for (const list of byCapsule.values()) n += list.length
        return n
      },
    }
  }
}
