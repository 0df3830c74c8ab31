/**
 * How far, in seconds, the confirmed block (ADR 0082: `confirmations` below the head and at or
 * below the `safe` / `finalized` block) trails the head (docs/adr/0082 amendment 2). A chain grant
 * expires `grantWindow` seconds after its block; the keyguard first sees it once its block is
 * confirmed, about `lag` seconds later. Less than half the window left to serve (push, retries,
 * attestation challenges) is refused: `lag` must be at most `grantWindow / 2`.
 */
import { FinalityLagError } from '../errors.ts'
import type { ChainClient } from './chain-client.ts'
import { confirmedBlock, type Finality } from './confirmed-block.ts'

export interface FinalityLag {
  finality: Finality
  confirmations: number
  /** Head block time − confirmed block time, seconds. */
  lagSeconds: number
  /** The AccessController's `grantWindow`, seconds. */
  grantWindowSeconds: number
  /** The most `lagSeconds` may be: half the grant window. */
  limitSeconds: number
  head: number
  confirmed: number
}

/** The share of `grantWindow` the lag may take: the rest is left to serve the grant. */
export const FINALITY_LAG_SHARE = 0.5

/**
 * Builds the lag reader; `undefined` when `finality` is `latest` (a depth of blocks only, whose
 * lag the operator chose) or the chain client cannot read block times or the grant window.
 */
export function finalityLagReader(
  init: { confirmations: number; finality?: Finality },
  chain: Pick<ChainClient, 'blockNumber' | 'taggedBlock' | 'blockTime' | 'grantWindow'>,
): (() => Promise<FinalityLag>) | undefined {
  const finality = init.finality ?? 'latest'
  const { blockTime, grantWindow } = chain
  if (finality === 'latest' || blockTime === undefined || grantWindow === undefined) return
  const confirmed = confirmedBlock(init, chain)
  let window: Promise<bigint> | undefined
  return async () => {
    window ??= grantWindow.call(chain)
    window.catch(() => {
      window = undefined
    })
    const head = await chain.blockNumber()
    const at = Math.max(0, await confirmed(head))
    const [headTime, atTime, grant] = await Promise.all([
      blockTime.call(chain, head),
      blockTime.call(chain, at),
      window,
    ])
    const grantWindowSeconds = Number(grant)
    return {
      finality,
      confirmations: init.confirmations,
      lagSeconds: Math.max(0, Number(headTime - atTime)),
      grantWindowSeconds,
      limitSeconds: Math.floor(grantWindowSeconds * FINALITY_LAG_SHARE),
      head,
      confirmed: at,
    }
  }
}

/** The typed error for a lag over the limit, or undefined when it leaves enough to serve. */
export function finalityLagError(lag: FinalityLag): FinalityLagError | undefined {
  if (lag.lagSeconds <= lag.limitSeconds) return undefined
  return new FinalityLagError(
    `The ${lag.finality} block trails the head by ${lag.lagSeconds} s: chain grants would expire before they are served`,
    {
      details: { ...lag },
      hint: `Use finality latest with enough confirmations for this chain, or deploy an AccessController with a grantWindow of at least ${2 * lag.lagSeconds} s (the lag may take at most half of it).`,
    },
  )
}
