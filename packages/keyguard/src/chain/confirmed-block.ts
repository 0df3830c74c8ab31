/**
 * The confirmed block (ADR 0082): `confirmations` below the head, and with `finality` set no
 * higher than the chain's `safe` or `finalized` block (the consensus layer's word that the block
 * will not be reorged, where a fixed depth is only a bet). Every read the keyguard acts on for the
 * chain path is taken at or below it: grant logs, the committee's verdicts, the fast-path audits a
 * chain grant waits for.
 */
import { KeyguardStateError } from '../errors.ts'
import type { ChainClient } from './chain-client.ts'

/** `latest`: depth only. `safe` / `finalized`: also at or below that block tag. */
export type Finality = 'latest' | 'safe' | 'finalized'

export interface ConfirmedBlockInit {
  /** Blocks below the head. */
  confirmations: number
  /** Default `latest`. */
  finality?: Finality
}

const FINALITIES: readonly Finality[] = ['latest', 'safe', 'finalized']

/**
 * Checks `confirmations` and `finality`.
 * @throws {KeyguardStateError} for a negative or fractional depth or an unknown finality.
 */
export function checkConfirmedBlockInit(init: ConfirmedBlockInit): void {
  if (!Number.isInteger(init.confirmations) || init.confirmations < 0) {
    throw new KeyguardStateError('confirmations must be a non-negative integer', {
      details: { confirmations: init.confirmations },
    })
  }
  if (init.finality !== undefined && !FINALITIES.includes(init.finality)) {
    throw new KeyguardStateError('finality must be latest, safe or finalized', {
      details: { finality: init.finality },
      hint: 'Use finalized on a chain whose RPCs answer the finalized block tag.',
    })
  }
}

/**
 * Builds the reader of the confirmed block number, given the head the caller read (can be below 0
 * on a young chain: nothing is confirmed yet).
 * @throws {KeyguardStateError} (`details.reason` `no-block-tag`) when `finality` is set and the
 *   chain client cannot read block tags.
 */
export function confirmedBlock(
  init: ConfirmedBlockInit,
  chain: Pick<ChainClient, 'taggedBlock'>,
): (head: number) => Promise<number> {
  checkConfirmedBlockInit(init)
  const finality = init.finality ?? 'latest'
  if (finality === 'latest') return async (head) => head - init.confirmations
  const tagged = chain.taggedBlock
  if (tagged === undefined) {
    throw new KeyguardStateError(`The chain client cannot read the ${finality} block`, {
      details: { finality, reason: 'no-block-tag' },
      hint: 'Use ethersChainClient, or finality latest with enough confirmations.',
    })
  }
  return async (head) => Math.min(head - init.confirmations, await tagged.call(chain, finality))
}
