/**
 * Forwarded answers (ADR 0095): a member's quote nonce is the hash of its signed
 * `AttestChallenge`, so the answer it got can be counted by a member the executor withheld that
 * phase from. This file keeps a job's forwarded answers and checks their challenges; the quote
 * itself is verified by the watch (watch-run.ts) when it needs the phase, like its own answers.
 *
 * Bounded work: one forwarded answer per (sender, phase) is checked (one signature recovery and
 * one block read), later ones are `held` unchecked; a Byzantine member can spend only its own
 * slots.
 */

import { equalBytes, toHex } from '@digicap/capsule-core'
import {
  attestChallengeNonce,
  type PbftCommittee,
  type PbftDomain,
  recoverAttestChallenger,
  type SignedAttestChallenge,
} from '@digicap/committee'
import type { AttestForward, AttestForwardStatus, AttestPhase } from '@digicap/protocol'
import { ForwardRefusedError } from './errors.ts'

/** A forwarded answer whose challenge holds. */
export interface ForwardedAnswer {
  /** The member that signed the challenge (checksummed). */
  readonly challenger: string
  /** The member that sent it (peer id). */
  readonly sender: string
  readonly forward: AttestForward
  /** keccak-256 of the challenge signature: the quote's nonce. */
  readonly nonce: Uint8Array
}

export interface ForwardCheckParameters {
  readonly jobId: Uint8Array
  readonly committee: PbftCommittee
  readonly domain: PbftDomain
  /** The first block a member of this job may sign a challenge with (the window's last block). */
  readonly fromBlock: number
  /** The number of the chain's block with this hash, undefined when there is none. */
  readonly blockOf: (hash: Uint8Array) => Promise<number | undefined>
}

/**
 * Checks a forwarded answer's challenge: the job, the signer (a seated member), the block (on
 * this chain, not before `fromBlock`).
 *
 * @throws {ForwardRefusedError} `unknown-job`, `signature`, `non-member`, `unknown-block`, `stale`.
 */
export async function checkForwardedChallenge(
  p: ForwardCheckParameters,
  forward: AttestForward,
): Promise<{ challenger: string; nonce: Uint8Array }> {
  if (!equalBytes(forward.jobId, p.jobId)) {
    throw new ForwardRefusedError('unknown-job', 'The answer is for another job', {
      details: { jobId: toHex(forward.jobId) },
    })
  }
  const signed: SignedAttestChallenge = {
    jobId: forward.jobId,
    blockHash: forward.blockHash,
    seq: forward.seq,
    signature: forward.challengeSignature,
  }
  let challenger: string
  try {
    challenger = recoverAttestChallenger(p.domain, signed)
  } catch (cause) {
    throw new ForwardRefusedError('signature', 'The challenge signature does not recover', {
      cause,
    })
  }
  if (!p.committee.members.some((m) => m.address.toLowerCase() === challenger.toLowerCase())) {
    throw new ForwardRefusedError('non-member', 'The challenge was not signed by a member', {
      details: { challenger },
    })
  }
  const block = await p.blockOf(forward.blockHash).catch(() => undefined)
  if (block === undefined) {
    throw new ForwardRefusedError('unknown-block', 'The challenge names no block of this chain', {
      details: { blockHash: toHex(forward.blockHash) },
    })
  }
  if (block < p.fromBlock) {
    throw new ForwardRefusedError('stale', 'The challenge is older than the job’s watch', {
      details: { block, fromBlock: p.fromBlock },
    })
  }
  return { challenger, nonce: attestChallengeNonce(forward.challengeSignature) }
}

/** Times a sender may retry one phase's answer whose block this node did not know yet. */
export const MAX_BLOCK_RETRIES = 3

/** One job's forwarded answers on this member. */
export interface JobForwards {
  /** Checks and keeps a forwarded answer from `sender` (a peer id); the wire status. */
  receive(sender: string, forward: AttestForward): Promise<AttestForwardStatus>
  /** The kept answers for a phase, first come first. */
  answers(phase: AttestPhase): readonly ForwardedAnswer[]
  /** Refusals so far, by reason (for events and tests). */
  readonly refused: ReadonlyMap<string, number>
}

export function jobForwards(
  p: ForwardCheckParameters & { onRefused?: (err: ForwardRefusedError) => void },
): JobForwards {
  const slots = new Set<string>()
  const lags = new Map<string, number>()
  const kept = new Map<AttestPhase, ForwardedAnswer[]>()
  const refused = new Map<string, number>()
  const peers = new Set(p.committee.members.map((m) => m.peerId))
  // Members sign the heads they read: many forwards name the same few blocks (one read each).
  const blocks = new Map<string, Promise<number | undefined>>()
  const blockOf = (hash: Uint8Array) => {
    const key = toHex(hash)
    let read = blocks.get(key)
    if (read === undefined) {
      read = p.blockOf(hash).catch(() => undefined)
      if (blocks.size >= 256) blocks.delete(blocks.keys().next().value as string)
      blocks.set(key, read)
      // Not found may be this node's RPC lagging the sender's: asked again next time.
      void read.then((n) => {
        if (n === undefined && blocks.get(key) === read) blocks.delete(key)
      })
    }
    return read
  }
  const checks = { ...p, blockOf }
  return {
    refused,
    answers: (phase) => kept.get(phase) ?? [],
    async receive(sender, forward) {
      if (!peers.has(sender)) return 'non-member'
      const slot = `${sender}/${forward.phase}`
      if (slots.has(slot)) return 'held'
      slots.add(slot)
      try {
        const { challenger, nonce } = await checkForwardedChallenge(checks, forward)
        const list = kept.get(forward.phase) ?? []
        list.push({ challenger, sender, forward, nonce })
        kept.set(forward.phase, list)
        return 'kept'
      } catch (err) {
        if (!(err instanceof ForwardRefusedError)) throw err
        // A block this node's RPC does not know yet may be one it is behind on: the sender may
        // try again, a few times per phase (bounded: each try is a recovery and a block read).
        const lagging = `${slot}/unknown-block`
        if (err.reason === 'unknown-block' && (lags.get(lagging) ?? 0) < MAX_BLOCK_RETRIES) {
          lags.set(lagging, (lags.get(lagging) ?? 0) + 1)
          slots.delete(slot)
        }
        refused.set(err.reason, (refused.get(err.reason) ?? 0) + 1)
        try {
          p.onRefused?.(err)
        } catch {
          // A reporting bug does not stop the watch.
        }
        return err.reason as AttestForwardStatus
      }
    },
  }
}
