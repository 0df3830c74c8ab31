/**
 * The attestation gate of `attested()` (`@digicap/attestation` SPEC §10): both release paths
 * ask it before any sealer (TPM) unwrap.
 *
 * - `requirement(capsuleId, executor)` reads the chain only, through the keyguard's (quorum)
 *   chain client: the capsule's current policy's `attestationRequired()` and, only if it is
 *   true, the executor's NodeRegistry `attestationKeyHash`. Nothing the requester sends decides
 *   it. A capsule whose policy has no `attested()` costs that one read and no dial.
 * - `attest(...)` challenges the executor's registered peer over `/digicap/attest/1.0.0` with
 *   `requireAttestedRelease`, for this grant id and this ephemeral key, and resolves only on a
 *   valid "before" quote of the registered record.
 *
 * Per executor (and registered record) the gate keeps the clock of the last accepted quote and
 * refuses a quote older than it (`QUOTE_CLOCK`: a counter or the clock went backwards). A reboot
 * or restart between two releases is an honest event (an executor host is patched and rebooted)
 * and opens a new epoch: each release's before-quote already proves, with a fresh nonce, the
 * registered boot PCRs and PCR 23 at reset, so nothing is lost by accepting it. (A reboot
 * within one run is the committee's finding, on the run's before/during/after quotes.)
 * Challenges to one executor run one at a time, so that quotes are checked in the order the TPM
 * made them. The memory is bounded (`maxExecutors`, least recently used dropped) and not
 * persisted: a keyguard restart starts from the next accepted quote.
 */
import {
  AttestationRefusedError,
  checkQuoteRollback,
  type EkRoots,
  type QuoteClock,
  QuoteVerificationError,
  requireAttestedRelease,
} from '@digicap/attestation'
import type { ProtocolDialer } from '@digicap/protocol'
import type { PeerId } from '@libp2p/interface'
import { getBytes } from 'ethers'
import type { ChainClient } from '../chain/chain-client.ts'
import { NotAttestedError } from '../errors.ts'
import { createKeyedLock } from '../fast-path/fast-path-gate.ts'

export interface AttestationGateInit {
  /** Time limit of one challenge (dial, quote, answer), ms. Default 5000. */
  timeoutMs?: number
  /** Executors whose last accepted quote clock is held. Default 10 000. */
  maxExecutors?: number
  /**
   * The TPM makers' CA certificates (`parseEkRoots`): an executor's record is activated only if
   * its EK certificate was issued by one of them (ADR 0069); refused `ek-untrusted` otherwise.
   * Default none: the EK is whatever key the executor registered.
   */
  ekRoots?: EkRoots | undefined
}

export interface AttestationGateComponents {
  chain: Pick<ChainClient, 'attestationRequired' | 'attestationKeyHash'>
  libp2p: ProtocolDialer
}

/** A release that must be attested: the executor and its registered record hash (chain). */
export interface AttestationRequirement {
  executor: string
  /** NodeRegistry `attestationKeyHash`, hex (zero: none registered, always refused). */
  registeredHash: string
}

/** What the quote must be bound to. */
export interface AttestationChallenge {
  /** The executor's registered (authenticated) libp2p peer. */
  peer: PeerId
  /** The grant id, hex. */
  grantId: string
  /** The grant's ephemeral X25519 public key: the only key the release may go to. */
  ephemeralKey: string | Uint8Array
  signal?: AbortSignal
}

export interface AttestationGate {
  /**
   * `undefined` when the capsule's policy does not require attestation; else what `attest`
   * checks. Reads the chain only.
   * @throws {QuorumError} when the RPCs disagree (nothing may be released).
   */
  requirement(capsuleId: string, executor: string): Promise<AttestationRequirement | undefined>
  /**
   * Challenges the executor; resolves once its before-quote for this grant and key is accepted.
   * @throws {NotAttestedError} the evidence was refused (`details.reason`, `details.check`).
   */
  attest(requirement: AttestationRequirement, challenge: AttestationChallenge): Promise<void>
  /** Executors (with their record) whose last accepted quote clock is held. */
  size(): number
}

/**
 * Builds an attestation gate.
 *
 * @example
 * ```ts
 * const gate = attestationGate({ timeoutMs: 5000 })({ chain, libp2p })
 * const required = await gate.requirement(capsuleId, executor)
 * if (required) await gate.attest(required, { peer, grantId, ephemeralKey })
 * ```
 */
export function attestationGate(init: AttestationGateInit = {}) {
  return (components: AttestationGateComponents): AttestationGate => {
    const { chain, libp2p } = components
    const timeout = init.timeoutMs ?? 5000
    const maxExecutors = init.maxExecutors ?? 10_000
    /** `executor|registeredHash` → the last accepted quote's clock, least recently used first. */
    const clocks = new Map<string, QuoteClock>()
    const lock = createKeyedLock()

    return {
      async requirement(capsuleId, executor) {
        if (!(await chain.attestationRequired(capsuleId))) return undefined
        return { executor, registeredHash: await chain.attestationKeyHash(executor) }
      },

      attest(requirement, challenge) {
        const key = `${requirement.executor}|${requirement.registeredHash.toLowerCase()}`
        return lock.run([key], async () => {
          const previous = clocks.get(key)
          let clock: QuoteClock
          try {
            clock = await requireAttestedRelease(
              libp2p,
              {
                peer: challenge.peer,
                grantId: getBytes(challenge.grantId),
                ephemeralKey:
                  typeof challenge.ephemeralKey === 'string'
                    ? getBytes(challenge.ephemeralKey)
                    : challenge.ephemeralKey,
                registeredHash: getBytes(requirement.registeredHash),
                ...(init.ekRoots === undefined ? {} : { ekRoots: init.ekRoots }),
              },
              { timeout, ...(challenge.signal === undefined ? {} : { signal: challenge.signal }) },
            )
            if (previous !== undefined) checkRollback(previous, clock)
          } catch (err) {
            if (!(err instanceof AttestationRefusedError)) throw err
            const { reason, check } = err.details as { reason?: unknown; check?: unknown }
            throw new NotAttestedError('The executor’s attestation was refused', {
              details: {
                reason: String(reason),
                ...(check === undefined ? {} : { check: String(check) }),
                executor: requirement.executor,
                grantId: challenge.grantId,
              },
              cause: err,
            })
          }
          clocks.delete(key)
          clocks.set(key, clock)
          if (clocks.size > maxExecutors) clocks.delete(clocks.keys().next().value as string)
        })
      },

      size: () => clocks.size,
    }
  }
}

function checkRollback(previous: QuoteClock, clock: QuoteClock): void {
  try {
    checkQuoteRollback(previous, clock)
  } catch (cause) {
    if (!(cause instanceof QuoteVerificationError)) throw cause
    throw new AttestationRefusedError('The executor’s quote is older than one accepted before', {
      details: { reason: 'evidence', check: cause.code },
      cause,
    })
  }
}

/** `reason` or `evidence:<check>`: how a refusal names a {@link NotAttestedError} on the wire and in events. */
export function notAttestedReason(err: NotAttestedError): string {
  const { reason, check } = err.details as { reason?: unknown; check?: unknown }
  return check === undefined ? String(reason) : `${String(reason)}:${String(check)}`
}
