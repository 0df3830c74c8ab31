/**
 * The key releaser: serves confirmed grants. For each grant it re-reads the stored grant
 * (`getGrant`: not expired, same capsule, executor and ephemeral key), records the intent in
 * the release journal (durable) BEFORE unwrapping, unwraps with the sealer, seals the data key
 * with HPKE to the grant's ephemeral key (AAD = the 32 grant id bytes), zeroes the data key,
 * and pushes a `KeyRelease` to the executor's registered libp2p peer, retrying with backoff
 * until acknowledged or the grant expires. On `ok` the journal entry is completed.
 *
 * Slots are shared fairly (ADR 0072): a job holds one of `maxConcurrent` slots only while it
 * checks, unwraps or pushes once; between two attempts it waits on a timer with no slot, and an
 * executor has at most one job running, so a mute executor's grants cannot hold every slot and
 * an honest executor's release goes out at once.
 *
 * After a restart `resumePending()` re-serves grants begun but never acknowledged, to the same
 * key (the journal refuses any other), so a grant is delivered exactly once per ephemeral key.
 *
 * A grant of a capsule whose policy requires `attested()` is unwrapped only after the
 * attestation gate accepted the executor's before-quote for this grant and ephemeral key
 * (attestation-gate.ts). A refusal is final: the journal entry is closed as refused (so no
 * restart or second log re-serves it) and `grant-refused` is emitted with reason
 * `not-attested`. An executor that does not answer the challenge (`unreachable`) after
 * `attestAttempts` tries is not refused: no answer is no evidence (its endpoint may be busy
 * with strangers' challenges, ADR 0067), so the grant is held (`grant-held`, reason
 * `unreachable`) and challenged again every `verdictPollMs` until it expires. Each challenge is
 * a turn of its own: the slot is given back between two tries (the next one waits on a timer,
 * as a push retry does), so mute attested executors cannot hold the slots (ADR 0072).
 *
 * With a committee gate (ADR 0033) the chain path does not challenge the executor itself: the
 * key of an `attested()` capsule goes out only once the committee's "before" verdict for the
 * grant's job is a pass on chain, at the confirmed block. Until then the grant is held — out of
 * the `maxConcurrent` slots, asked again every `verdictPollMs` until it expires (event
 * `grant-held`, once per reason); a fail verdict or a job closed without one refuses it for
 * good, as above.
 *
 * With the fast path on (`runGuard`, ADR 0073), a grant is unwrapped only when no fast-path audit
 * of its capsule is pending (else held: `grant-held`, reason `audit-pending`) and no fast-path key
 * released before it was recorded as an overrun after it (else refused for good, reason
 * `fast-path-overrun`): so `maxRuns(n)` gives n keys whichever path each came by.
 *
 * A grant the chain stores with `fastPath = true` was served off-chain: the fast path answered
 * with the key inline and its audit transaction emitted the log. Such a grant is never unwrapped
 * nor pushed here (event `served-inline`); a journal entry an older version began for it is
 * closed, so no restart re-sends it.
 */
import { encodeHpkeSealed, hpkeSeal } from '@digicap/capsule-core'
import type { ProtocolDialer } from '@digicap/protocol'
import {
  type KeyRelease,
  keyReleaseProtocol,
  type ReleaseAck,
  RetryExhaustedError,
  request,
} from '@digicap/protocol'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeBase58, getBytes } from 'ethers'
import type { ChainClient, ChainGrant, GrantLog } from '../chain/chain-client.ts'
import {
  AlreadyReleasedError,
  AwaitingVerdictError,
  GrantKeyMismatchError,
  GrantRefusedError,
  NotAttestedError,
  ReleaseFailedError,
} from '../errors.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapDataKey } from '../sealers/wrap.ts'
import type { KeyRecord, KeyStore } from '../store/key-store.ts'
import type { Logger } from '../types.ts'
import { type AttestationGate, attestationGate, notAttestedReason } from './attestation-gate.ts'
import { capsuleRefusal } from './capsule-check.ts'
import type { CommitteeGate } from './committee-gate.ts'
import type { ReleaseJournal } from './release-journal.ts'

export interface KeyReleaserInit {
  /**
   * Releases being prepared or pushed at the same time (one per executor at most; a grant
   * waiting for its next attempt holds none). Default 4.
   */
  maxConcurrent?: number
  /** Time limit of one push attempt, ms. Default 5000. */
  attemptTimeoutMs?: number
  /** First backoff ceiling, ms. Default 250. */
  retryBaseMs?: number
  /** Largest backoff ceiling, ms. Default 5000. */
  retryMaxMs?: number
  /**
   * Attestation challenges of a grant whose executor does not answer (`unreachable`) before it
   * is held (asked again every `verdictPollMs` until it expires), `retryBaseMs` apart and
   * doubling. Default 3. Other refusals are final at once.
   */
  attestAttempts?: number
  /**
   * How often a held grant asks again (its committee's before verdict, or an unanswered
   * challenge), ms. Default 2000.
   */
  verdictPollMs?: number
  /**
   * The owner accounts whose capsules this keyguard serves, for key records that do not name
   * their owner (`metadata.owner`; records stored before ADR 0071). A grant is served only when
   * the capsule's on-chain owner is the record's (capsule-check.ts). Default none: such a record's
   * grants are refused `not-owner`.
   */
  owners?: readonly string[]
}

/** What the releaser reports. Never carries key bytes. */
export type ReleaseEvent =
  | { type: 'grant-accepted'; grantId: string; resumed: boolean }
  /**
   * `reason` `not-attested`: the policy requires `attested()` and the executor's evidence was
   * refused; `attestation` says why (`unregistered`, `record-mismatch`, `not-activated`,
   * `evidence:<QUOTE_* check>`; `unreachable` only on the fast path, the chain path holds the
   * grant). The journal holds the grant as refused.
   * `reason` `not-owner` / `policy-mismatch`: the capsule's on-chain owner or policy is not the
   * key record's (capsule-check.ts, ADR 0071); `detail` says which. Journaled as refused too.
   */
  | {
      type: 'grant-refused'
      grantId: string
      reason: string
      attestation?: string
      detail?: string
    }
  /**
   * Held: a fast-path audit of the capsule is not on chain yet (`audit-pending`, ADR 0073), or
   * the committee's before verdict is not on chain yet (`reason` `no-job`, `not-seated`,
   * `no-verdict`; ADR 0033), or the executor did not answer its challenge (`unreachable`,
   * ADR 0067). Nothing was unwrapped; reported once per reason.
   */
  | { type: 'grant-held'; grantId: string; reason: string }
  /** A fast-path grant's audit log: the key already went out inline; nothing is sent. */
  | { type: 'served-inline'; grantId: string }
  | { type: 'unwrapped'; grantId: string }
  | { type: 'released'; grantId: string; attempts: number }
  /**
   * `reason`: the executor's non-`ok` answer (`open-failed`, `unknown-grant`: the journal then
   * holds the grant as refused, no restart re-sends it), or why the push gave up (`no-peer`,
   * `unknown-capsule`, an error code such as `RETRY_EXHAUSTED` when the grant expired first).
   */
  | { type: 'release-failed'; grantId: string; reason: string }

export interface KeyReleaserComponents {
  sealer: Sealer
  keyStore: Pick<KeyStore, 'get'>
  journal: ReleaseJournal
  chain: ChainClient
  libp2p: ProtocolDialer
  /**
   * The `attested()` gate; share one with the fast path so both keep one quote-clock memory.
   * Default: a gate of its own over `chain` and `libp2p`.
   */
  attestation?: AttestationGate
  /**
   * The chain path's `attested()` gate with a committee (ADR 0033): when given, an `attested()`
   * capsule's grant waits for the committee's before verdict on chain instead of the keyguard's
   * own challenge (the fast path still challenges).
   */
  committee?: CommitteeGate
  /**
   * Whether a chain grant may be served now, given the fast path's releases (docs/adr/0073): the
   * fast path's `chainGrant`. `hold` holds the grant (asked again every `verdictPollMs`, event
   * `grant-held` reason `audit-pending`), `refuse` refuses it for good (reason
   * `fast-path-overrun`). Default: always served.
   */
  runGuard?: (grant: ChainGrant) => Promise<'serve' | 'hold' | 'refuse'>
  onEvent?: (event: ReleaseEvent) => void
  logger?: Logger
}

export interface KeyReleaser {
  /**
   * Checks a grant log against the stored grant, journals it and queues the release.
   * Refusals are reported (event `grant-refused`), not thrown.
   * @throws for transient failures (RPC, disk): the caller should retry the grant.
   */
  accept(log: GrantLog): Promise<'queued' | 'refused' | 'served-inline'>
  /** Re-queues every journal entry begun but not completed. Returns how many. */
  resumePending(): Promise<number>
  /** Resolves when no release is queued or running. */
  idle(): Promise<void>
  /** Stops retrying (in-flight pushes are aborted) and waits for them. */
  stop(): Promise<void>
  /** Releases queued, running, or held for a committee's verdict. */
  readonly pending: number
}

/** A grant's release: the push made once (HPKE ciphertext only), and the attempts so far. */
interface Prepared {
  peer: PeerId
  release: KeyRelease
  /** The key record it was checked against (metadata only is read again). */
  record: KeyRecord
}
interface Job {
  grant: ChainGrant
  push?: Prepared | undefined
  attempts: number
  /** Attestation challenges made in this job (its turns before the unwrap). */
  challenges: number
}

/** An unanswered challenge to be made again after `delayMs`, out of the slot (not exported). */
class ChallengeAgain {
  readonly delayMs: number
  constructor(delayMs: number) {
    this.delayMs = delayMs
  }
}

/** libp2p peer id from the multihash bytes a NodeRegistry record holds. */
export function peerIdFromRegistered(bytes: Uint8Array): PeerId {
  return peerIdFromString(encodeBase58(bytes))
}

/**
 * Builds a key releaser.
 *
 * @example
 * ```ts
 * const releaser = keyReleaser({ maxConcurrent: 4 })({ sealer, keyStore, journal, chain, libp2p })
 * await releaser.resumePending()
 * ```
 */
export function keyReleaser(init: KeyReleaserInit = {}) {
  return (components: KeyReleaserComponents): KeyReleaser => {
    const { sealer, keyStore, journal, chain, libp2p } = components
    const maxConcurrent = init.maxConcurrent ?? 4
    const attemptTimeout = init.attemptTimeoutMs ?? 5000
    const gate = components.attestation ?? attestationGate()({ chain, libp2p })
    const attestAttempts = Math.max(1, init.attestAttempts ?? 3)
    const emit = (e: ReleaseEvent): void => {
      try {
        components.onEvent?.(e)
      } catch {
        // Observers must not break releases.
      }
    }
    const abort = new AbortController()
    /** Grants queued, running or waiting for their next push (the latest promise of each). */
    const inFlight = new Map<string, Promise<void>>()
    const queue: Job[] = []
    /** Grants between two push attempts: the timer that queues the next one (no slot held). */
    const waiting = new Map<string, ReturnType<typeof setTimeout>>()
    /** Executors (checksummed) with a job running: at most one each, so none holds every slot. */
    const busyExecutors = new Set<string>()
    const retryBase = init.retryBaseMs ?? 250
    const retryMax = init.retryMaxMs ?? 5000
    /** Grants waiting for their before verdict: the timer of the next look, the last reason. */
    const held = new Map<string, { timer?: ReturnType<typeof setTimeout>; reason: string }>()
    const verdictPollMs = init.verdictPollMs ?? 2000
    let running = 0
    let idleWaiters: (() => void)[] = []

    const refuse = (
      grantId: string,
      reason: string,
      attestation?: string,
      detail?: string,
    ): 'refused' => {
      const extra = {
        ...(attestation === undefined ? {} : { attestation }),
        ...(detail === undefined ? {} : { detail }),
      }
      emit({ type: 'grant-refused', grantId, reason, ...extra })
      components.logger?.warn('grant refused', { grantId, reason, ...extra })
      return 'refused'
    }

    /**
     * The `attested()` gate, before any unwrap: `true` if the grant may be served, `false` if
     * it was refused (journaled and reported).
     */
    async function attested(job: Job, peer: PeerId): Promise<boolean> {
      const { grant } = job
      if (components.committee !== undefined) return committeeVerdict(grant)
      const requirement = await gate.requirement(grant.capsuleId, grant.executor)
      if (requirement === undefined) return true
      job.challenges++
      try {
        await gate.attest(requirement, {
          peer,
          grantId: grant.grantId,
          ephemeralKey: grant.ephemeralKey,
          signal: abort.signal,
        })
        return true
      } catch (err) {
        if (!(err instanceof NotAttestedError) || abort.signal.aborted) throw err
        if (err.details.reason === 'unreachable' && job.challenges < attestAttempts) {
          // Challenged again on a timer with the slot given back (ADR 0072): a mute executor
          // holds a slot only for one challenge at a time, as for one push at a time.
          throw new ChallengeAgain(retryBase * 2 ** (job.challenges - 1))
        }
        if (err.details.reason === 'unreachable') {
          // Held (pump → hold), asked again within the grant's validity: see the header.
          throw new AwaitingVerdictError('The executor did not answer the attestation challenge', {
            details: { grantId: grant.grantId, reason: 'unreachable' },
            hint: 'The grant is challenged again until it expires; check the executor serves /digicap/attest/1.0.0.',
            cause: err,
          })
        }
        const why = notAttestedReason(err)
        await journal.refuse(grant.grantId, `not-attested ${why}`)
        refuse(grant.grantId, 'not-attested', why)
        return false
      }
    }

    /**
     * The committee's before verdict (ADR 0033): `true` on a pass, `false` when refused for good
     * (journaled and reported). {@link AwaitingVerdictError} goes up: the grant is held.
     */
    async function committeeVerdict(grant: ChainGrant): Promise<boolean> {
      if (!(await chain.attestationRequired(grant.capsuleId))) return true
      try {
        await (components.committee as CommitteeGate).verdict(grant.grantId)
        return true
      } catch (err) {
        if (!(err instanceof NotAttestedError)) throw err
        const why = String(err.details.reason)
        await journal.refuse(grant.grantId, `not-attested ${why}`)
        refuse(grant.grantId, 'not-attested', why)
        return false
      }
    }

    /**
     * The fast path's word on the runs (ADR 0073): `true` if the grant may be served, `false` if
     * refused (journaled and reported). {@link AwaitingVerdictError} goes up: the grant is held.
     */
    async function runsAllow(grant: ChainGrant): Promise<boolean> {
      const verdict = (await components.runGuard?.(grant)) ?? 'serve'
      if (verdict === 'serve') return true
      if (verdict === 'hold') {
        throw new AwaitingVerdictError('A fast-path audit of this capsule is not on chain yet', {
          details: { grantId: grant.grantId, reason: 'audit-pending' },
          hint: 'The grant is asked again until the audit lands or the grant expires.',
        })
      }
      await journal.refuse(grant.grantId, 'fast-path-overrun')
      refuse(grant.grantId, 'fast-path-overrun')
      return false
    }

    /** Whether `grant` expired, by the chain's clock (the local clock when it cannot be read). */
    async function expiredNow(grant: ChainGrant): Promise<boolean> {
      try {
        return grant.expiresAt <= (await chain.now())
      } catch {
        return Number(grant.expiresAt) * 1000 <= Date.now()
      }
    }

    /**
     * Holds `grant` until its next look (or refuses it once expired). The entry stays while
     * the grant is held, so that each reason is reported once.
     */
    async function hold(grant: ChainGrant, err: AwaitingVerdictError): Promise<void> {
      const reason = String(err.details.reason)
      let entry = held.get(grant.grantId)
      if (entry?.reason !== reason) {
        emit({ type: 'grant-held', grantId: grant.grantId, reason })
        components.logger?.info('grant held', { grantId: grant.grantId, reason })
      }
      entry = { reason }
      held.set(grant.grantId, entry)
      let expired = false
      try {
        expired = grant.expiresAt <= (await chain.now())
      } catch {
        // The clock is read again at the next look.
      }
      if (abort.signal.aborted || held.get(grant.grantId) !== entry) return
      if (expired) {
        held.delete(grant.grantId)
        refuse(grant.grantId, 'expired')
        return
      }
      const current = entry
      current.timer = setTimeout(() => {
        if (held.get(grant.grantId) === current) schedule(grant, true)
      }, verdictPollMs)
    }

    /**
     * The capsule check (capsule-check.ts), at the pinned block: `true` if the capsule's on-chain
     * record matches the key record, `false` if the grant was refused (journaled and reported).
     */
    async function ownedAsRecorded(grant: ChainGrant, record: KeyRecord): Promise<boolean> {
      const refusal = capsuleRefusal(
        record,
        await chain.capsuleRecord(grant.capsuleId),
        init.owners,
      )
      if (refusal === undefined) return true
      await journal.refuse(grant.grantId, `${refusal.reason} ${refusal.detail}`)
      refuse(grant.grantId, refusal.reason, undefined, refusal.detail)
      return false
    }

    async function authoritative(grantId: string): Promise<ChainGrant> {
      const grant = await chain.getGrant(grantId)
      if (grant === undefined) {
        throw new GrantRefusedError('The AccessController does not know this grant', {
          details: { grantId, reason: 'not-found' },
        })
      }
      if (grant.expiresAt <= (await chain.now())) {
        throw new GrantRefusedError('The grant has expired', {
          details: { grantId, reason: 'expired' },
        })
      }
      return grant
    }

    /** A fast-path grant: served inline already. Closes an entry an older version began. */
    async function servedInline(grantId: string): Promise<'served-inline'> {
      if ((await journal.get(grantId))?.state === 'begun') await journal.complete(grantId)
      emit({ type: 'served-inline', grantId })
      return 'served-inline'
    }

    const isIdle = (): boolean => running === 0 && queue.length === 0 && waiting.size === 0

    function pump(): void {
      while (running < maxConcurrent && queue.length > 0 && !abort.signal.aborted) {
        // The first job whose executor has none running: one executor's grants take one slot.
        const next = queue.findIndex((j) => !busyExecutors.has(j.grant.executor))
        if (next < 0) break
        const job = queue.splice(next, 1)[0] as Job
        const { grant } = job
        running++
        busyExecutors.add(grant.executor)
        const p = step(job)
          .then((outcome) => {
            if (outcome !== 'retrying') held.delete(grant.grantId)
          })
          .catch((err: unknown) => {
            if (err instanceof AwaitingVerdictError) return hold(grant, err)
            held.delete(grant.grantId)
            // The executor's answer or the error's reason (`open-failed`, `no-peer`, …), else its code.
            const e = err as { code?: string; details?: { reason?: unknown } }
            const reason =
              typeof e.details?.reason === 'string' ? e.details.reason : (e.code ?? 'error')
            emit({ type: 'release-failed', grantId: grant.grantId, reason })
            components.logger?.warn('release failed', {
              grantId: grant.grantId,
              code: e.code,
              reason,
            })
          })
          .finally(() => {
            running--
            busyExecutors.delete(grant.executor)
            if (!waiting.has(grant.grantId)) inFlight.delete(grant.grantId)
            pump()
            if (isIdle()) {
              for (const w of idleWaiters) w()
              idleWaiters = []
            }
          })
        inFlight.set(grant.grantId, p)
      }
    }

    /**
     * One turn of a job in a slot: the checks and the unwrap on its first turn, then one push.
     * A push that fails gives the slot back and queues the next attempt after a backoff (random
     * up to `retryBaseMs` doubling to `retryMaxMs`) while the grant is valid (`retrying`).
     */
    async function step(job: Job): Promise<'done' | 'retrying'> {
      const { grant } = job
      const retry = job.push !== undefined
      const until = Number(grant.expiresAt) * 1000
      // A turn that comes after the grant expired (a hold's next look, a retry queued behind a
      // busy slot) unwraps and sends nothing.
      if (await expiredNow(grant)) {
        if (!retry) {
          refuse(grant.grantId, 'expired')
          return 'done'
        }
        throw new RetryExhaustedError('Gave up: the grant expired before the next attempt', {
          details: { attempts: job.attempts },
        })
      }
      if (job.push === undefined) {
        try {
          job.push = await prepare(job)
        } catch (err) {
          if (!(err instanceof ChallengeAgain)) throw err
          later(job, err.delayMs)
          return 'retrying'
        }
      }
      if (job.push === undefined) return 'done'
      const { peer, release, record } = job.push
      if (Date.now() >= until) {
        throw new RetryExhaustedError('Gave up: the grant expired before its key was sent', {
          details: { attempts: job.attempts },
        })
      }
      let ack: ReleaseAck
      try {
        // A retry: not sent again once the capsule was revoked (or moved) since the last attempt;
        // a failed read counts as a failed attempt.
        if (retry && !(await ownedAsRecorded(grant, record))) return 'done'
        job.attempts++
        ack = await request(libp2p, peer, keyReleaseProtocol, release, {
          timeout: Math.max(1, Math.min(until - Date.now(), attemptTimeout)),
          signal: abort.signal,
        })
      } catch (err) {
        if (abort.signal.aborted) throw err
        const delay = Math.floor(
          Math.random() *
            Math.min(retryMax, retryBase * 2 ** Math.min(Math.max(0, job.attempts - 1), 30)),
        )
        if (Date.now() + delay >= until) {
          throw new RetryExhaustedError('Gave up: the grant expires before the next attempt', {
            details: { attempts: job.attempts },
            cause: err,
          })
        }
        later(job, delay)
        return 'retrying'
      }
      if (ack.status !== 'ok') {
        // The executor read the release and declined it (`open-failed`: its key does not open
        // it or is not the capsule's; `unknown-grant`: no run waits for it). Sending the same
        // ciphertext again cannot change that: closed, so no restart re-sends it.
        await journal.refuse(grant.grantId, `executor ${ack.status}`)
        throw new ReleaseFailedError('The executor refused the key release', {
          details: { grantId: grant.grantId, reason: ack.status },
        })
      }
      await journal.complete(grant.grantId)
      emit({ type: 'released', grantId: grant.grantId, attempts: job.attempts })
      return 'done'
    }

    /** Queues `job`'s next turn after `delay` ms, holding no slot meanwhile. */
    function later(job: Job, delay: number): void {
      waiting.set(
        job.grant.grantId,
        setTimeout(() => {
          waiting.delete(job.grant.grantId)
          if (abort.signal.aborted) return
          queue.push(job)
          pump()
        }, delay),
      )
    }

    /** Queues `grant` unless it is queued, running, or held (`fromHold`: its hold's next look). */
    function schedule(grant: ChainGrant, fromHold = false): void {
      if (
        inFlight.has(grant.grantId) ||
        (held.has(grant.grantId) && !fromHold) ||
        queue.some((j) => j.grant.grantId === grant.grantId)
      )
        return
      queue.push({ grant, attempts: 0, challenges: 0 })
      inFlight.set(grant.grantId, Promise.resolve())
      pump()
    }

    /**
     * The checks before the unwrap, the unwrap and the HPKE seal: the push to send, or
     * `undefined` when the grant was refused (journaled and reported).
     */
    async function prepare(job: Job): Promise<Prepared | undefined> {
      const { grant } = job
      const peerBytes = await chain.nodePeerId(grant.executor)
      if (peerBytes === undefined) {
        throw new ReleaseFailedError('The executor has no registered peer id', {
          details: { grantId: grant.grantId, reason: 'no-peer' },
        })
      }
      const peer = peerIdFromRegistered(peerBytes)
      const record = await keyStore.get(grant.capsuleId)
      if (record === undefined) {
        throw new ReleaseFailedError('The capsule has no key record', {
          details: { grantId: grant.grantId, reason: 'unknown-capsule' },
        })
      }
      // Re-read right before the unwrap: a grant queued, held or resumed is checked again.
      if (!(await ownedAsRecorded(grant, record))) return undefined
      if (!(await runsAllow(grant))) return undefined
      if (!(await attested(job, peer))) return undefined
      const grantIdBytes = getBytes(grant.grantId)
      const dataKey = await unwrapDataKey(record.wrappedKeys, sealer)
      let hpke: Uint8Array
      try {
        hpke = encodeHpkeSealed(await hpkeSeal(getBytes(grant.ephemeralKey), dataKey, grantIdBytes))
      } finally {
        dataKey.fill(0)
      }
      emit({ type: 'unwrapped', grantId: grant.grantId })
      const release: KeyRelease = {
        grantId: grantIdBytes,
        capsuleId: getBytes(grant.capsuleId),
        hpke,
        fastPath: grant.fastPath,
      }
      return { peer, release, record }
    }

    return {
      async accept(log) {
        let grant: ChainGrant
        try {
          grant = await authoritative(log.grantId)
        } catch (err) {
          if (err instanceof GrantRefusedError)
            return refuse(log.grantId, String(err.details.reason))
          throw err
        }
        if (
          grant.capsuleId !== log.capsuleId ||
          grant.executor !== log.executor ||
          grant.ephemeralKey !== log.ephemeralKey
        ) {
          return refuse(log.grantId, 'mismatch')
        }
        if (grant.fastPath) return servedInline(grant.grantId)
        const record = await keyStore.get(grant.capsuleId)
        if (record === undefined) return refuse(log.grantId, 'unknown-capsule')
        let resumed: boolean
        try {
          ;({ resumed } = await journal.begin(grant.grantId, getBytes(grant.ephemeralKey), {
            capsuleId: grant.capsuleId,
          }))
        } catch (err) {
          if (err instanceof AlreadyReleasedError) return refuse(log.grantId, 'replayed')
          if (err instanceof GrantKeyMismatchError) return refuse(log.grantId, 'key-mismatch')
          if (err instanceof GrantRefusedError) return refuse(log.grantId, 'refused')
          throw err
        }
        if (!(await ownedAsRecorded(grant, record))) return 'refused'
        emit({ type: 'grant-accepted', grantId: grant.grantId, resumed })
        schedule(grant)
        return 'queued'
      },

      async resumePending() {
        let n = 0
        for (const entry of await journal.pending()) {
          let grant: ChainGrant
          try {
            grant = await authoritative(entry.grantId)
          } catch (err) {
            if (err instanceof GrantRefusedError) {
              refuse(entry.grantId, String(err.details.reason))
              continue
            }
            throw err
          }
          if (grant.fastPath) {
            await servedInline(grant.grantId)
            continue
          }
          emit({ type: 'grant-accepted', grantId: grant.grantId, resumed: true })
          schedule(grant)
          n++
        }
        return n
      },

      idle() {
        if (isIdle()) return Promise.resolve()
        return new Promise((resolve) => idleWaiters.push(resolve))
      },

      async stop() {
        abort.abort()
        queue.length = 0
        for (const h of held.values()) clearTimeout(h.timer)
        held.clear()
        for (const t of waiting.values()) clearTimeout(t)
        waiting.clear()
        await Promise.allSettled([...inFlight.values()])
      },

      get pending() {
        return running + queue.length + waiting.size + held.size
      },
    }
  }
}
