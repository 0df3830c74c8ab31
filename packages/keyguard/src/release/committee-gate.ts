/**
 * The chain path's `attested()` gate with a committee (ADR 0033): the key of an `attested()`
 * capsule is released only once the committee's "before" verdict for this grant's job is a
 * pass in the AttestationHub, read at the confirmed block (`confirmations` below the head the
 * RPC quorum reports; the block's hash agreed by the quorum). A certificate in a block that is
 * not yet buried that deep is not seen, so a reorg that removes it can never have released the
 * key.
 *
 * - pass → resolves;
 * - nothing yet (no job, not seated, seated without a before verdict) → {@link AwaitingVerdictError}:
 *   the releaser holds the grant and asks again;
 * - fail, or a job closed without a before verdict (timed out, certified or settled without
 *   one) → {@link NotAttestedError} (`committee-fail`, `job-closed`): final.
 *
 * The job id is the grant id, so a verdict for another job never counts.
 */
import type { ChainClient } from '../chain/chain-client.ts'
import { confirmedBlock, type Finality } from '../chain/confirmed-block.ts'
import { AwaitingVerdictError, KeyguardStateError, NotAttestedError } from '../errors.ts'

export interface CommitteeGateInit {
  /** Blocks a before verdict must be buried under (the keyguard's `confirmations`). */
  confirmations: number
  /** And at or below the chain's block of this tag (the keyguard's `finality`, ADR 0082). */
  finality?: Finality
}

export interface CommitteeGateComponents {
  chain: Pick<ChainClient, 'blockNumber' | 'hubJob' | 'taggedBlock'>
}

export interface CommitteeGate {
  /**
   * Resolves when the committee's before verdict for `grantId`'s job is a pass at the confirmed
   * block.
   * @throws {AwaitingVerdictError} no verdict yet (hold and ask again).
   * @throws {NotAttestedError} a fail, or a job closed without a before verdict (final).
   * @throws {QuorumError} when the RPCs disagree (nothing may be released).
   */
  verdict(grantId: string): Promise<void>
}

/**
 * Builds the committee gate.
 *
 * @throws {KeyguardStateError} when the chain client cannot read the hub (no `attestationHub`
 *   address given to it).
 * @example
 * ```ts
 * const gate = committeeGate({ confirmations: 2 })({ chain })
 * await gate.verdict(grantId) // or AwaitingVerdictError / NotAttestedError
 * ```
 */
export function committeeGate(init: CommitteeGateInit) {
  return (components: CommitteeGateComponents): CommitteeGate => {
    const { chain } = components
    const hubJob = chain.hubJob
    if (hubJob === undefined)
      throw new KeyguardStateError('The chain client does not know the AttestationHub', {
        hint: 'Give ethersChainClient addresses.attestationHub (deployDigicap records it).',
      })
    const confirmed = confirmedBlock(
      {
        confirmations: Math.max(0, Math.floor(init.confirmations)),
        ...(init.finality === undefined ? {} : { finality: init.finality }),
      },
      chain,
    )
    return {
      async verdict(grantId) {
        const block = Math.max(0, await confirmed(await chain.blockNumber()))
        const job = await hubJob.call(chain, grantId, block)
        const details = { grantId, block }
        if (job.before === 'pass') return
        if (job.before === 'fail')
          throw new NotAttestedError('The committee failed the executor before the run', {
            details: { ...details, reason: 'committee-fail' },
          })
        if (job.status === 'none' || job.status === 'open' || job.status === 'seated') {
          const reason =
            job.status === 'none' ? 'no-job' : job.status === 'open' ? 'not-seated' : 'no-verdict'
          throw new AwaitingVerdictError('The committee’s before verdict is not on chain yet', {
            details: { ...details, reason },
          })
        }
        throw new NotAttestedError('The job closed without a before verdict', {
          details: { ...details, reason: 'job-closed', status: job.status },
        })
      },
    }
  }
}
