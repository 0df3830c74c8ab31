/**
 * The fast-path server: answers a signed `AccessRequest` straight from an executor with the
 * HPKE-wrapped data key, then logs the grant on chain (`recordFastPathGrant`).
 *
 * Order of checks, cheapest first, so that a stranger costs no stored state, no signature
 * check and at most a globally budgeted RPC lookup: rate limit (`rate-limited`) and bounded
 * queue of in-flight evaluations (`busy`, `queue-full`) — a registered executor's peer has its
 * own bucket and queue (`executorRate`, `maxQueuePerExecutor`), strangers share `rate` per peer
 * and `maxQueue` in all, so strangers never take an executor's turn → key record held locally
 * (`unknown-capsule`) → the claimed executor in the executor directory (memory for registered
 * executors; an unknown address costs one NodeRegistry lookup from a global budget, `busy`
 * `lookup-budget` when it is spent): unregistered → `policy-denied` `EXECUTOR_NOT_REGISTERED`,
 * another peer → `bad-signature` `peer-id-mismatch` → EIP-712 signature against the
 * AccessController's domain (`bad-signature`) → expiry window (`expired`) → the executor's own
 * replay memory of `(executor, nonce)` (`replayed`; `busy` `replay-quota` when its quota is full)
 * → whether the capsule's policy requires `attested()` (`attestationRequired()`, read from
 * chain) → if it does, a `/digicap/attest/1.0.0` challenge to the requesting executor's peer for
 * the grant id this request gets and its ephemeral key, whose before-quote must pass
 * (`not-attested`, reason `unregistered`, `record-mismatch`, `unreachable` or
 * `evidence:<QUOTE_* check>`; no dial otherwise), BEFORE any lock, so a mute executor holds only
 * its own request (attest-outside-lock.ts) → per-capsule lock (and per-executor lock when
 * `fee > 0`) → wait until no audit of this capsule (executor) is unrecorded, at most
 * `pendingWaitMs` (`busy`, `audit-pending`) → on chain, in parallel: the capsule's registry
 * record, whose owner (and policy, when the key record names one) must be the key record's
 * (`policy-denied` `not-owner` / `policy-mismatch`, capsule-check.ts), `nonceUsed` (`replayed`),
 * `checkAccess` by `eth_call` (`policy-denied`, reason = the policy's reason name), `runCount`
 * → the grant id; if another grant took the run index the quote was bound to, the lock is given
 * back and the request challenged again (`busy` `attestation-raced` after 3 rounds) → only now
 * the sealer unwrap (at most `maxUnwraps` at once), and the grant is recorded in the release journal
 * as served inline (so its audit's `AccessGranted` log is not released again) → seal, answer.
 *
 * Before all of this, strangers are cut at the connection (`strangers`, a connection guard from
 * `@digicap/protocol`): a peer that is not a registered executor's may open a budget of fast-path
 * streams, and all such peers of one host a budget together; over it, its connection is closed
 * and it (or its whole host) is refused for a cooldown by the libp2p connection gater, so a flood
 * costs a bounded number of streams and handshakes a second whatever number of peer ids it uses.
 * Registered executors' peers are never counted, cut or refused.
 *
 * The stream itself is bounded too: a stranger's request frame must arrive within
 * `readTimeoutMs` (a registered executor's within the exchange's `timeoutMs`, so an event loop a
 * flood stalls does not drop its requests), and one peer may have at most `maxQueuePerExecutor`
 * frames being read, strangers together `maxReading` (registered executors' peers exempt), so
 * held half-frames pin a bounded amount of memory for a bounded time.
 *
 * Why the lock and the wait: `checkAccess` and `runCount` are `eth_call`s that cannot see an
 * audit transaction that is not mined yet, and the contract's `checkAccess` takes no run-count
 * override. So a grant is only evaluated when every earlier fast-path grant of the same capsule
 * (and, for paid requests, of the same executor, whose deposit it spends) is on chain. The common
 * single request waits for nothing; a second request within one block time waits for the first
 * receipt. The grant id answered is computed from `runCount` read under the lock, which is the
 * `runIndex` the audit gets on chain.
 *
 * The audit record is journaled (`<dataDir>/fast-path-audit/<keccak(executor||nonce)>.json`) BEFORE the key
 * leaves, so a crash cannot lose it; `recordPending()` retries records left by a crash. A record
 * that reverts is reported as an `audit-alert` event and kept on disk, marked with the time it
 * reverted, from which a restart cuts its executor off before serving anyone (ADR 0072). A record
 * that lands is kept on disk too, with its receipt's block, until it is `confirmations` deep
 * (ADR 0081 amendment): a restart re-tracks it (found on chain: nonce used and log there) or sends
 * it again (a reorg took it away), and a re-send after a reorg goes through the same record path,
 * so one that reverts cuts its executor off as well.
 */
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { computeGrantId, QuorumError, Reason, reasonName } from '@digicap/contracts'
import {
  type AccessRequest,
  type AccessResponse,
  accessRequestReplayKey,
  type ConnectionGuard,
  type ConnectionGuardInit,
  type ConnectionGuardStats,
  createConnectionGuard,
  createRateLimiter,
  fastPathProtocol,
  handle,
  type ProtocolDialer,
  type ProtocolRegistrar,
  toChecksumAddress,
  verifyAccessRequestSignature,
} from '@digicap/protocol'
import type { PeerId } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getAddress, getBytes, hexlify, toBeHex, toBigInt } from 'ethers'
import type {
  ChainClient,
  FastPathAuditItem,
  FastPathRecord,
  GrantLog,
} from '../chain/chain-client.ts'
import type { Finality } from '../chain/confirmed-block.ts'
import { AlreadyReleasedError, FastPathConfigError, NotAttestedError } from '../errors.ts'
import {
  type AttestationGate,
  attestationGate,
  notAttestedReason,
} from '../release/attestation-gate.ts'
import { capsuleRefusal } from '../release/capsule-check.ts'
import { hpkeSender } from '../release/hpke-sender.ts'
import type { ReleaseJournal } from '../release/release-journal.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapDataKey } from '../sealers/wrap.ts'
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../store/fs-atomic.ts'
import { readJsonFile } from '../store/json-file.ts'
import type { KeyStore } from '../store/key-store.ts'
import type { Logger } from '../types.ts'
import { attestOutsideLock, MAX_ATTEST_ROUNDS } from './attest-outside-lock.ts'
import { type AuditBlame, auditBlame } from './audit-blame.ts'
import { auditConfirmations } from './audit-confirmations.ts'
import { type AuditReceipt, createAuditSender } from './audit-sender.ts'
import { type ChainGrantVerdict, chainGrantGuard } from './chain-grant-guard.ts'
import { executorDirectory } from './executor-directory.ts'
import { executorFeed } from './executor-feed.ts'
import { FEED_STATE_FILE } from './executor-feed-state.ts'
import { createExecutorReplays } from './executor-replays.ts'
import { createKeyedLock, createPendingAudits, createSemaphore } from './fast-path-gate.ts'

export interface FastPathInit {
  /** The keyguard's data directory (the audit journal lives in `fast-path-audit/`). */
  dataDir: string
  /**
   * Blocks an audit's log must be buried under before a chain grant of its capsule is served
   * (the keyguard's `confirmations`; ADR 0081). Default 0: the log must still be on chain.
   */
  confirmations?: number
  /** And at or below the chain's block of this tag (the keyguard's `finality`, ADR 0082). */
  finality?: Finality
  /**
   * The owner accounts whose capsules this keyguard serves, for key records that do not name
   * their owner (`metadata.owner`). A request is served only when the capsule's on-chain owner
   * (and policy, when the record names one) is the record's (capsule-check.ts, ADR 0071).
   * Default none: such a record's requests are refused `policy-denied` `not-owner`.
   */
  owners?: readonly string[]
  /** Latest accepted `expiry - now`, seconds, capped by the AccessController's `auditWindow`. Default 600. */
  /**
   * Least time, seconds, a request must have left before it expires, counted from the later of
   * the keyguard's clock and the chain's latest block time: `recordFastPathGrant` reverts
   * `SignedRequestExpired` once its block is past the expiry, so a request about to expire would
   * get its key with no audit, no run counted and no fee (ADR 0072). Refused `expired`
   * `too-soon`. Default 60 (several blocks on any chain, retries included).
   */
  minAuditMarginSeconds?: number
  /**
   * How long an executor whose audit reverted is refused the fast path (`policy-denied`
   * `audit-failed`), ms. Default 24 h. A reverted audit is kept on disk (with `revertedAt`, from
   * which a restart cuts the executor off before its first request) and sent again at each
   * start, which re-arms the cut-off: the operator clears it by removing the file
   * (`<dataDir>/fast-path-audit/<id>.json`) once understood (ADR 0072).
   */
  auditFailureCooldownMs?: number
  /**
   * While the fast path is halted because its audits fail on the operator's side (`NotKeyguard`,
   * no ETH for gas, an unknown revert: docs/adr/0084), how often the audits that failed so are
   * sent again, ms; the first that lands lifts the halt. Default 30 000.
   */
  haltRetryMs?: number
  maxExpirySeconds?: number
  /**
   * Per-peer token bucket of peers that are not a registered executor's (strangers).
   * Default 10 burst, 5 a second.
   */
  rate?: { capacity: number; refillPerSecond: number }
  /**
   * Each registered executor's own token bucket, keyed by its authenticated peer id and apart
   * from the strangers' `rate` and `maxQueue`: nothing a stranger sends takes from it.
   * Default 30 burst, 10 a second (see the README: one request per job run).
   */
  executorRate?: { capacity: number; refillPerSecond: number }
  /**
   * The connection budgets of strangers (peers that are not a registered executor's) when no
   * `guard` component is passed: their fast-path streams per peer and per host, over which the
   * connection is cut and refused for `cooldownMs`. Default 20 burst / 10 a second per peer,
   * 40 / 20 per host, 60 s (above `rate`: a stranger that heeds `rate-limited` is never cut).
   */
  strangers?: ConnectionGuardInit
  /** Requests of strangers being evaluated at once; more get `busy` (`queue-full`). Default 32. */
  maxQueue?: number
  /**
   * Requests of one registered executor being evaluated (and frames being read) at once; more
   * get `busy`. Default 64: its rate times a slow moment's latency (10/s × ~6 s).
   */
  maxQueuePerExecutor?: number
  /** Live nonces remembered per registered executor (its replay quota). Default 10 000. */
  maxNonces?: number
  /** Executors whose nonces are remembered at once. Default 10 000. */
  maxExecutors?: number
  /**
   * Time limit for a stranger's request frame to arrive, ms (a registered executor's peer has
   * the whole `timeoutMs`). Default 2000.
   */
  readTimeoutMs?: number
  /**
   * Request frames read at once from one peer: at least `maxQueuePerExecutor`, so that an
   * executor's reads that pile up in a stalled moment are not aborted. Default 4 (so 64).
   */
  maxReadingPerPeer?: number
  /**
   * Request frames read at once from all peers but registered executors' (exempt: strangers
   * filling it cannot shut them out). Default 256.
   */
  maxReading?: number
  /**
   * NodeRegistry lookups of executor addresses not in memory (first contact, strangers): a global
   * token bucket. Default 20 burst, 10 a second.
   */
  lookups?: { capacity: number; refillPerSecond: number }
  /** Time limit of one exchange, ms. Default 10 000. */
  timeoutMs?: number
  /** First wait before re-sending a failed audit transaction, ms (doubles, 5 tries). Default 200. */
  auditRetryBaseMs?: number
  /**
   * Audits sent in one transaction at most (`recordFastPathGrants`): those that queued while the
   * previous audit transaction was being mined go together. Default 16.
   */
  auditBatch?: number
  /**
   * Longest wait for an earlier audit of the same capsule (or paying executor) to be mined
   * before answering `busy` (`audit-pending`), ms. Default 5000.
   */
  pendingWaitMs?: number
  /** Sealer (TPM) unwraps at once; more wait (bounded by `maxQueue`). Default 4. */
  maxUnwraps?: number
  /** How long a registered executor's NodeRegistry peer is reused, ms. Default 5000. */
  peerCacheMs?: number
  /** How long an unregistered executor address is remembered, ms. Default 60 000. */
  strangerCacheMs?: number
  /**
   * The executor feed: registered executors are read from the NodeRegistry's registration
   * events from `startBlock` on and then every `pollIntervalMs` (2000), in `batchBlocks` (2000)
   * ranges, so that none needs a lookup from the strangers' budget; `start()` waits up to
   * `startWaitMs` (5000) for the first read to reach the head.
   */
  registrations?: {
    startBlock?: number
    pollIntervalMs?: number
    batchBlocks?: number
    startWaitMs?: number
  }
  /**
   * Debug latency trace, off by default: called once per evaluated request with the
   * milliseconds since the request arrived at each stage it reached (`stored`, `peer`, `verified`,
   * `locked`, `chain`, `authorized`, `attested` (attested() only), `unwrapped`, `journaled`, `sealed`). Never carries key bytes.
   */
  trace?: (marks: Readonly<Record<string, number>>) => void
}

/**
 * Why an audit record failed: `operator-not-approved` (the contract answered `NotKeyguard`:
 * the owner has not approved this keyguard's operator account), `operator-unfunded` (no ETH
 * for gas), `reverted` (another revert), `failed` (RPC or anything else, after retries),
 * `expired-while-halted` (an audit held back by a halt expired before it could land: the key
 * is out unaudited, nobody is cut off).
 */
export type AuditAlertReason =
  | 'operator-not-approved'
  | 'operator-unfunded'
  | 'reverted'
  | 'failed'
  | 'expired-while-halted'

/**
 * The fast path is halted (docs/adr/0084): an audit failed for a reason on the keyguard
 * operator's side, so no audit can be expected to land. Every request is refused `busy`
 * `audits-halted` until an audit lands again (the failed ones are re-sent every `haltRetryMs`)
 * or the keyguard restarts.
 */
export interface FastPathHalt {
  reason: AuditAlertReason
  /** The revert (`NotKeyguard`, ...) or error code. */
  error: string
  /** When (ISO 8601). */
  since: string
  hint: string
}

/** Classifies an error from `ChainClient.recordFastPathGrant`. */
export function auditAlertReason(err: unknown): AuditAlertReason {
  const e = err as { errorName?: string; code?: string; message?: string } | undefined
  if (e?.errorName === 'NotKeyguard') return 'operator-not-approved'
  if (e?.code === 'INSUFFICIENT_FUNDS' || /insufficient funds/i.test(String(e?.message ?? ''))) {
    return 'operator-unfunded'
  }
  return e?.errorName !== undefined ? 'reverted' : 'failed'
}

/** What the operator should do about a halt of this reason. */
function haltHint(reason: AuditAlertReason): string {
  if (reason === 'operator-not-approved') {
    return "The keyguard's operator account is not the capsule owner's approved operator: approve it (CapsuleRegistry.setOperator) or configure the right key, then restart the keyguard (the failed audits are also re-sent every haltRetryMs)."
  }
  if (reason === 'operator-unfunded') {
    return "Send ETH for gas to the keyguard's operator account; the failed audits are re-sent every haltRetryMs and the first that lands lifts the halt (or restart the keyguard)."
  }
  return "The AccessController refused the audit for a reason the keyguard does not attribute to the executor: check the keyguard's contract addresses, operator account and RPC, then restart the keyguard."
}

export type FastPathEvent =
  | { type: 'fast-path-granted'; grantId: string; capsuleId: string; executor: string; ms: number }
  | { type: 'fast-path-refused'; reasonCode: string; reason?: string; peer: string }
  | { type: 'audit-recorded'; grantId: string; recordedGrantId: string; transactionHash: string }
  | {
      /**
       * A recorded audit's block was reorged away and the audit is not on chain: it is sent
       * again, and the capsule's chain grants are held until it is confirmed (ADR 0081).
       */
      type: 'audit-reorged'
      grantId: string
      capsuleId: string
      executor: string
    }
  | {
      /**
       * The audit was mined but the executor's deposit did not cover the fee: `fromStake` wei
       * (decimal) came from its stake, `uncovered` wei were not paid at all (contracts ADR 0006).
       */
      type: 'audit-shortfall'
      grantId: string
      capsuleId: string
      executor: string
      fee: string
      fromStake: string
      uncovered: string
      transactionHash: string
    }
  | {
      /** The executor feed first reached the head: `executors` registrations read. */
      type: 'executors-synced'
      block: number
      executors: number
    }
  | {
      type: 'audit-alert'
      grantId: string
      error: string
      /**
       * Why, when the keyguard can tell: its operator account is not approved by the capsule
       * owner (`CapsuleRegistry.setOperator`), or has no ETH for gas.
       */
      reason: AuditAlertReason
      /**
       * Whose fault (docs/adr/0084): `executor` (it is cut off), `capsule` (revoked since),
       * `operator` (the fast path halts); absent for a transient failure.
       */
      blame?: AuditBlame
    }
  | {
      /** The fast path stopped serving (`halt` set) or serves again (`halt` absent). */
      type: 'fast-path-halted'
      halt?: FastPathHalt
    }

export interface FastPathComponents {
  sealer: Sealer
  keyStore: Pick<KeyStore, 'get'>
  /** The release journal: each grant served inline is recorded there before its key leaves. */
  journal: Pick<ReleaseJournal, 'served'>
  chain: ChainClient
  /** Registers the fast path; dials `/digicap/attest/1.0.0` for capsules that require it. */
  libp2p: ProtocolRegistrar & ProtocolDialer
  /**
   * The `attested()` gate; share one with the key releaser so both keep one quote-clock memory.
   * Default: a gate of its own over `chain` and `libp2p`.
   */
  attestation?: AttestationGate
  /**
   * Cuts strangers' connections over their budget. Pass the one whose `gater` is the libp2p
   * node's `connectionGater`, so that cut peers are refused at the handshake; without it, a
   * guard of its own (`strangers`) still cuts them, at their first stream after each reconnect.
   */
  guard?: ConnectionGuard
  onEvent?: (event: FastPathEvent) => void
  logger?: Logger
}

export interface FastPathServer {
  /** Registers `/digicap/fast-path/1.0.0` and re-sends audit records left by a crash. */
  start(): Promise<void>
  /** Unregisters the protocol and waits for audit records in flight. */
  stop(): Promise<void>
  /** Sends every journaled audit record not yet on chain. Returns how many were recorded. */
  recordPending(): Promise<number>
  /** Audit records journaled but not yet on chain. */
  auditPending(): Promise<number>
  /** Strangers' connections cut and refused so far, and in their cooldown now. */
  strangers(): ConnectionGuardStats
  /** Why the fast path refuses every request now (docs/adr/0084), or undefined when it serves. */
  halted(): FastPathHalt | undefined
  /**
   * Whether the key releaser may serve a chain grant now (docs/adr/0073): `hold` while a
   * fast-path audit of its capsule is not on chain, `refuse` when a fast-path grant after it was
   * recorded as an overrun. See chain-grant-guard.ts.
   */
  chainGrant(grant: { capsuleId: string; runIndex: bigint }): Promise<ChainGrantVerdict>
}

interface AuditEntry {
  version: 1
  /** keccak256(executor || nonce), hex: the file name. */
  id: string
  /** The grant id the keyguard answered with (computed from `runIndex`). */
  grantId?: string
  /** The run index the grant id was computed from (decimal). */
  runIndex?: string
  request: Record<string, string>
  jobParams: string
  signature: string
  /**
   * When its audit last reverted (ISO 8601), written then: a restart cuts the executor off from
   * this time, before it serves anyone (ADR 0072 amendment). Absent while never reverted.
   */
  revertedAt?: string
  /**
   * When its audit failed on the operator's side (ISO 8601; docs/adr/0084), and why: no cut-off;
   * a restart starts halted until this audit lands or expires.
   */
  operatorFailedAt?: string
  operatorError?: string
  operatorReason?: AuditAlertReason
  /**
   * The block of its receipt, written then: the file is kept until the audit is confirmed
   * (`confirmations` deep, ADR 0081 amendment), and a restart re-tracks it from there (re-sent if
   * a reorg took it away meanwhile). Absent while it never landed.
   */
  blockNumber?: number
}

const toRecord = (req: AccessRequest): FastPathRecord => ({
  capsuleId: hexlify(req.capsuleId),
  executor: toChecksumAddress(req.executor),
  ephemeralKey: hexlify(req.ephemeralKey),
  measurement: hexlify(req.measurement),
  jobParamsHash: hexlify(req.jobParamsHash),
  fee: req.fee,
  nonce: toBigInt(req.nonce),
  expiry: req.expiry,
})

/**
 * The expiry options, checked when the server is built (ADR 0072, amended): a request is served
 * only when it expires between `minAuditMarginSeconds` and `maxExpirySeconds` ahead, so
 * `maxExpirySeconds` below the margin refused every request, and just above it left a window a
 * little clock skew or queueing closes. The margin is what the audit needs to land; it is never
 * lowered to fit: the operator is told to raise `maxExpirySeconds` (or turn the fast path off).
 *
 * @throws {FastPathConfigError} an option that is not a whole number of seconds, or
 *   `maxExpirySeconds < 2 × minAuditMarginSeconds`.
 */
function checkExpiryOptions(
  init: Pick<FastPathInit, 'maxExpirySeconds' | 'minAuditMarginSeconds'>,
) {
  const maxExpiry = init.maxExpirySeconds ?? 600
  const margin = init.minAuditMarginSeconds ?? 60
  for (const [option, value, least] of [
    ['maxExpirySeconds', maxExpiry, 1],
    ['minAuditMarginSeconds', margin, 0],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < least) {
      throw new FastPathConfigError(`fastPath.${option} must be a whole number of seconds`, {
        details: { option, value: String(value), least },
      })
    }
  }
  if (maxExpiry < 2 * margin) {
    throw new FastPathConfigError(
      'fastPath.maxExpirySeconds leaves a released key no time for its audit',
      {
        details: { maxExpirySeconds: maxExpiry, minAuditMarginSeconds: margin, least: 2 * margin },
        hint: `Set fastPath.maxExpirySeconds to ${2 * margin} or more (a request must expire at least ${margin} s ahead so that its audit lands), or turn the fast path off.`,
      },
    )
  }
}

/**
 * Builds the fast-path server.
 *
 * @example
 * ```ts
 * const fast = fastPathServer({ dataDir })({ sealer, keyStore, chain, libp2p })
 * await fast.start()
 * ```
 */
export function fastPathServer(init: FastPathInit) {
  checkExpiryOptions(init)
  return (components: FastPathComponents): FastPathServer => {
    const { sealer, keyStore, chain, libp2p } = components
    const gate = components.attestation ?? attestationGate()({ chain, libp2p })
    const guard = components.guard ?? createConnectionGuard(init.strangers)()
    const maxExpiry = init.maxExpirySeconds ?? 600
    const minAuditMargin = BigInt(init.minAuditMarginSeconds ?? 60)
    const auditFailureCooldownMs = init.auditFailureCooldownMs ?? 24 * 60 * 60 * 1000
    /** Whether the short audit window was logged (once). */
    let shortWindowWarned = false
    /** Executors (checksummed) refused after a reverted audit, until when (ms since epoch). */
    const auditFailed = new Map<string, number>()
    const cutOff = (executor: string, until: number): void => {
      const key = getAddress(executor)
      if ((auditFailed.get(key) ?? 0) < until) auditFailed.set(key, until)
    }
    const haltRetryMs = init.haltRetryMs ?? 30_000
    /**
     * Why every request is refused now (docs/adr/0084). `fromDisk`: restored at start from audits
     * that failed so before it, and lifted once they are all resolved without a new failure.
     */
    let halt: (FastPathHalt & { fromDisk?: boolean }) | undefined
    /** Audits that failed on the operator's side, by journal id: re-sent while halted. */
    const held = new Map<string, AuditEntry>()
    const heldSending = new Set<string>()
    let haltTimer: ReturnType<typeof setInterval> | undefined
    const halting = (h: FastPathHalt, fromDisk = false): void => {
      const first = halt === undefined
      halt = { ...h, ...(fromDisk ? { fromDisk } : {}) }
      if (!first) return
      haltTimer = setInterval(retryHeld, haltRetryMs)
      haltTimer.unref?.()
      emit({ type: 'fast-path-halted', halt: h })
      components.logger?.warn('fast path: halted, every request refused (audits-halted)', { ...h })
    }
    const resume = (): void => {
      if (halt === undefined) return
      halt = undefined
      clearInterval(haltTimer)
      haltTimer = undefined
      emit({ type: 'fast-path-halted' })
      components.logger?.info('fast path: audits land again; serving')
      retryHeld()
    }
    /** Sends the held audits again (those not in flight). */
    function retryHeld(): void {
      for (const [id, entry] of held) {
        if (heldSending.has(id)) continue
        heldSending.add(id)
        const p = record(entry).finally(() => {
          heldSending.delete(id)
          recording.delete(p)
        })
        recording.add(p)
      }
    }
    // The chain's clock (latest block time), read at most once a second and shared.
    let chainClock: { at: number; value: Promise<bigint> } | undefined
    const chainNow = (): Promise<bigint> => {
      if (chainClock === undefined || performance.now() - chainClock.at > 1000) {
        const value = chain.now()
        const clock = { at: performance.now(), value }
        value.catch(() => {
          if (chainClock === clock) chainClock = undefined
        })
        chainClock = clock
      }
      return chainClock.value
    }
    const maxQueue = init.maxQueue ?? 32
    // A request may expire at most `maxExpiry` and at most the contract's audit window ahead:
    // `recordFastPathGrant` reverts after the expiry, so an audit that lands at all lands inside
    // the window, where nothing the executor does can void it (contracts ADR 0006). Read once.
    let auditWindow: Promise<bigint> | undefined
    const expiryHorizon = async (): Promise<bigint | undefined> => {
      try {
        auditWindow ??= chain.auditWindow()
        const window = await auditWindow
        return window < BigInt(maxExpiry) ? window : BigInt(maxExpiry)
      } catch (err) {
        auditWindow = undefined
        // RPCs that disagree are answered `rpc-quorum` like every other read.
        if (err instanceof QuorumError) throw err
        return undefined
      }
    }
    const auditDir = join(init.dataDir, 'fast-path-audit')
    // Two lanes: strangers share `limiter` and `maxQueue`; each registered executor has its own
    // bucket and queue, so a flood of free peer ids cannot refuse an executor's request.
    const limiter = createRateLimiter(init.rate ?? { capacity: 10, refillPerSecond: 5 })()
    const executorLimiter = createRateLimiter(
      init.executorRate ?? { capacity: 30, refillPerSecond: 10 },
    )()
    const maxQueuePerExecutor = init.maxQueuePerExecutor ?? 64
    /** In-flight requests per registered executor's peer. */
    const executorActive = new Map<string, number>()
    const replays = createExecutorReplays({
      perExecutor: init.maxNonces ?? 10_000,
      maxExecutors: init.maxExecutors ?? 10_000,
      maxTtlMs: maxExpiry * 1000,
    })
    const directory = executorDirectory({
      ttlMs: init.peerCacheMs ?? 5000,
      negativeTtlMs: init.strangerCacheMs ?? 60_000,
      ...(init.lookups === undefined ? {} : { lookups: init.lookups }),
    })({ chain })
    const feed = executorFeed({
      file: join(init.dataDir, FEED_STATE_FILE),
      ...init.registrations,
    })({
      chain,
      directory,
      onSynced: (at) => emit({ type: 'executors-synced', ...at }),
      ...(components.logger ? { logger: components.logger } : {}),
    })
    const domain = {
      chainId: chain.chainId,
      verifyingContract: chain.accessController as `0x${string}`,
    }
    const emit = (e: FastPathEvent): void => {
      try {
        components.onEvent?.(e)
      } catch {
        // Observers must not break the server.
      }
    }
    let active = 0
    const pendingWaitMs = init.pendingWaitMs ?? 5000
    const unwraps = createSemaphore(init.maxUnwraps ?? 4)
    const locks = createKeyedLock()
    const audits = createPendingAudits()
    /** Set once `start()` re-queued the audits a restart left on disk. */
    let auditsLoaded = false
    /**
     * Lowest run count the chain must report per capsule: after our own recorded audits, and
     * after each chain grant the key releaser was told to serve.
     */
    const minRuns = new Map<string, bigint>()
    const atLeast = (capsule: string, runs: bigint): void => {
      if ((minRuns.get(capsule) ?? 0n) < runs) minRuns.set(capsule, runs)
    }
    const chainGrant = chainGrantGuard({
      chain,
      locks,
      audits,
      ready: () => auditsLoaded,
      served: atLeast,
      unconfirmed: (capsuleId) => landed.unconfirmed(capsuleId),
    })
    let unhandle: (() => Promise<void>) | undefined
    let untrust: (() => void) | undefined
    const recording = new Set<Promise<unknown>>()
    const auditSender = createAuditSender(
      {
        ...(init.auditBatch === undefined ? {} : { maxBatch: init.auditBatch }),
        ...(init.auditRetryBaseMs === undefined ? {} : { retryBaseMs: init.auditRetryBaseMs }),
        isFinal: (err) =>
          (err as { errorName?: string }).errorName !== undefined ||
          auditAlertReason(err) === 'operator-unfunded',
      },
      chain,
    )
    // Audits with a receipt, until they are `confirmations` deep (ADR 0081).
    const landed = auditConfirmations({
      confirmations: init.confirmations ?? 0,
      ...(init.finality === undefined ? {} : { finality: init.finality }),
    })({
      chain,
      // Through the record path: a re-send that reverts cuts its executor off and is marked on
      // disk like a first revert (ADR 0072), and one that lands is kept and tracked anew.
      resend: (a) => {
        const entry = a.id === undefined ? undefined : kept.get(a.id)
        if (entry === undefined) return Promise.resolve('failed')
        const p = record(entry)
        const settled = p.finally(() => recording.delete(settled))
        recording.add(settled)
        return p
      },
      onReorged: (a) => {
        emit({ type: 'audit-reorged', ...a })
        components.logger?.warn('fast path: an audit was reorged away; sent again', a)
      },
      // Confirmed: its file goes (kept until now so that a restart re-tracks it).
      onConfirmed: (a) => {
        if (a.id === undefined) return
        kept.delete(a.id)
        rm(join(auditDir, `${a.id}.json`), { force: true }).catch((err: unknown) =>
          components.logger?.warn('fast path: could not remove a confirmed audit', {
            grantId: a.grantId,
            error: String(err),
          }),
        )
      },
    })
    /** Audits that landed and are not confirmed yet, by journal id (their files are kept). */
    const kept = new Map<string, AuditEntry>()

    const refuse = (
      peer: string,
      reasonCode: Extract<AccessResponse, { status: 'refused' }>['reasonCode'],
      reason?: string,
      retryAfterMs?: number,
    ): AccessResponse => {
      emit({
        type: 'fast-path-refused',
        reasonCode,
        ...(reason === undefined ? {} : { reason }),
        peer,
      })
      return {
        status: 'refused',
        reasonCode,
        ...(reason === undefined ? {} : { reason }),
        ...(retryAfterMs === undefined ? {} : { retryAfterMs: Math.ceil(retryAfterMs) }),
      }
    }

    /**
     * The audit's `AccessGranted` log when it is on chain already: its request's nonce is used
     * and the log (same executor and ephemeral key, `fastPath`) is there. A used nonce without
     * the log is not this audit's.
     */
    async function onChainAlready(
      entry: AuditEntry,
      req: FastPathRecord,
    ): Promise<GrantLog | undefined> {
      if (!(await chain.nonceUsed(req.executor, req.capsuleId, req.nonce))) return undefined
      const head = await chain.blockNumber()
      const from = Math.max(
        0,
        (entry.blockNumber ?? head) - (entry.blockNumber === undefined ? 1024 : 64),
      )
      const executor = getAddress(req.executor)
      const eph = req.ephemeralKey.toLowerCase()
      return (await chain.grantLogs(from, head, [req.capsuleId])).find(
        (l) =>
          l.fastPath && getAddress(l.executor) === executor && l.ephemeralKey.toLowerCase() === eph,
      )
    }

    /**
     * Lands the audit: found on chain already (an audit that had landed before a restart, or
     * whose transaction came back by itself: `NonceUsed`), or sent. Rejects as the send did.
     */
    async function landing(
      entry: AuditEntry,
      item: FastPathAuditItem,
    ): Promise<AuditReceipt & { found?: true }> {
      const fromLog = (l: GrantLog): AuditReceipt => ({
        grantId: l.grantId,
        transactionHash: l.transactionHash,
        blockNumber: l.blockNumber,
      })
      if (entry.blockNumber !== undefined) {
        const log = await onChainAlready(entry, item.req)
        // Found, not sent: it says nothing about whether an audit can land now (docs/adr/0084).
        if (log !== undefined) return { ...fromLog(log), found: true }
      }
      try {
        // Queued for the audit sender: one transaction at a time, batching what waits meanwhile
        // (transient failures retried, a lone revert final).
        return await auditSender.send(item)
      } catch (err) {
        if ((err as { errorName?: string }).errorName !== 'NonceUsed') throw err
        const log = await onChainAlready(entry, item.req).catch(() => undefined)
        if (log === undefined) throw err
        return fromLog(log)
      }
    }

    async function record(entry: AuditEntry): Promise<'recorded' | 'reverted' | 'failed'> {
      const r = entry.request
      const req: FastPathRecord = {
        capsuleId: r.capsuleId as string,
        executor: r.executor as string,
        ephemeralKey: r.ephemeralKey as string,
        measurement: r.measurement as string,
        jobParamsHash: r.jobParamsHash as string,
        fee: BigInt(r.fee as string),
        nonce: BigInt(r.nonce as string),
        expiry: BigInt(r.expiry as string),
      }
      const item = { req, jobParams: entry.jobParams, signature: entry.signature }
      try {
        const res = await landing(entry, item)
        // Kept on disk with its receipt's block until it is confirmed (ADR 0081 amendment): a
        // restart re-tracks it, and re-sends it if a reorg took it away. Written before it is
        // tracked, so a confirmation cannot remove the file before this write lands.
        const landedEntry: AuditEntry = { ...entry, blockNumber: res.blockNumber }
        await writeFileAtomic(
          join(auditDir, `${entry.id}.json`),
          new TextEncoder().encode(`${JSON.stringify(landedEntry)}\n`),
        ).catch((writeErr: unknown) =>
          components.logger?.warn('fast path: could not keep a landed audit', {
            grantId: entry.grantId ?? entry.id,
            error: String(writeErr),
          }),
        )
        kept.set(entry.id, landedEntry)
        landed.landed({
          id: entry.id,
          grantId: entry.grantId ?? res.grantId,
          item,
          blockNumber: res.blockNumber,
        })
        if (entry.runIndex !== undefined) {
          atLeast(entry.request.capsuleId as string, BigInt(entry.runIndex) + 1n)
        }
        audits.settle(entry.id)
        held.delete(entry.id)
        // An audit was sent and landed: the operator's side works (again).
        if (res.found === undefined) resume()
        emit({
          type: 'audit-recorded',
          grantId: entry.grantId ?? res.grantId,
          recordedGrantId: res.grantId,
          transactionHash: res.transactionHash,
        })
        if (res.shortfall !== undefined) {
          // The owner's fee came (partly) from the executor's stake, or was not paid: what the
          // owner must see (contracts ADR 0006).
          const shortfall = {
            grantId: res.grantId,
            capsuleId: req.capsuleId,
            executor: req.executor,
            fee: req.fee.toString(),
            fromStake: res.shortfall.fromStake.toString(),
            uncovered: res.shortfall.uncovered.toString(),
            transactionHash: res.transactionHash,
          }
          emit({ type: 'audit-shortfall', ...shortfall })
          components.logger?.warn('fast path: audit paid from the executor stake', shortfall)
        }
        return 'recorded'
      } catch (err) {
        const e = err as { errorName?: string; code?: string }
        const error = e.errorName ?? e.code ?? 'error'
        const grantId = entry.grantId ?? entry.id
        const reason = auditAlertReason(err)
        const blame = auditBlame(err)
        const file = join(auditDir, `${entry.id}.json`)
        const mark = (marked: AuditEntry, what: string): Promise<void> =>
          writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(marked)}\n`)).catch(
            (writeErr: unknown) =>
              components.logger?.warn(`fast path: could not mark a ${what} audit`, {
                grantId,
                error: String(writeErr),
              }),
          )
        // A revert is final: the chain state the next evaluation reads is authoritative again.
        // Any other failure leaves the audit unrecorded, so its capsule stays `busy` until
        // `recordPending()` lands it.
        if (e.errorName !== undefined) audits.settle(entry.id)
        if (
          e.errorName === 'SignedRequestExpired' &&
          (entry.operatorFailedAt !== undefined || held.has(entry.id))
        ) {
          // Held back by the operator's failure until it expired: not the executor's doing.
          held.delete(entry.id)
          await rm(file, { force: true })
          const alert = {
            grantId,
            error,
            reason: 'expired-while-halted' as const,
            blame: 'operator' as const,
          }
          emit({ type: 'audit-alert', ...alert })
          components.logger?.warn(
            'fast path: a held audit expired; the key is out unaudited',
            alert,
          )
          if (halt?.fromDisk === true && held.size === 0) resume()
          return 'reverted'
        }
        if (blame === 'executor') {
          held.delete(entry.id)
          // A key went out and its audit will never land (no run counted, no fee): a security
          // event. The executor is refused the fast path for the cool-down (ADR 0072).
          const at = Date.now()
          cutOff(entry.request.executor as string, at + auditFailureCooldownMs)
          // Kept on disk with the time it reverted, so that the cut-off holds from the first
          // moment after a restart, whatever the re-sent audit meets (ADR 0072 amendment).
          await mark({ ...entry, revertedAt: new Date(at).toISOString() }, 'reverted')
        } else if (blame === 'capsule') {
          // Revoked since the check: this audit can never land, and no executor is to blame.
          held.delete(entry.id)
          await rm(file, { force: true })
        } else if (blame === 'operator') {
          // The operator's side (docs/adr/0084): nobody is cut off; nothing is served inline
          // until an audit lands again. Marked so that a restart starts halted.
          const since = new Date().toISOString()
          const marked: AuditEntry = {
            ...entry,
            operatorFailedAt: since,
            operatorError: error,
            operatorReason: reason,
          }
          held.set(entry.id, marked)
          await mark(marked, 'held')
          halting({ reason, error, since, hint: haltHint(reason) })
        }
        emit({ type: 'audit-alert', grantId, error, reason, ...(blame ? { blame } : {}) })
        components.logger?.warn('fast path: audit record failed', { grantId, error, reason, blame })
        return e.errorName !== undefined ? 'reverted' : 'failed'
      }
    }

    const gateKeys = (capsuleId: string, executor: string, fee: bigint): string[] =>
      fee > 0n ? [`c:${capsuleId}`, `e:${executor}`] : [`c:${capsuleId}`]

    function recordInBackground(entry: AuditEntry): void {
      const r = entry.request
      audits.add(
        entry.id,
        gateKeys(r.capsuleId as string, r.executor as string, BigInt(r.fee as string)),
      )
      const p = record(entry).finally(() => recording.delete(p))
      recording.add(p)
    }

    async function serve(
      req: AccessRequest,
      peer: string,
      peerBytes: Uint8Array,
      remote: PeerId,
    ): Promise<AccessResponse> {
      const started = performance.now()
      const marks: Record<string, number> | undefined = init.trace ? {} : undefined
      const mark = (stage: string): void => {
        if (marks !== undefined) marks[stage] = performance.now() - started
      }
      try {
        return await evaluate(req, peer, peerBytes, remote, started, mark)
      } finally {
        if (marks !== undefined) init.trace?.(marks)
      }
    }

    async function evaluate(
      req: AccessRequest,
      peer: string,
      peerBytes: Uint8Array,
      remote: PeerId,
      started: number,
      mark: (stage: string) => void,
    ): Promise<AccessResponse> {
      // In-memory checks first: nothing below reads the disk for, stores state for, or
      // verifies a signature of, anyone but a registered executor's own peer. The directory
      // comes before the key store: a stranger's request is answered from memory (or a
      // budgeted lookup), so a flood queues no file `stat` in libuv's thread pool ahead of an
      // executor's journal writes (seen in the flood bench: the executor's `stored` and
      // `journaled` stages ×10 under the flood when every stranger request stat'ed the key file).
      const rec = toRecord(req)
      const known = await directory.check(rec.executor, peerBytes)
      if (known.status === 'busy') {
        return refuse(peer, 'busy', 'lookup-budget', known.retryAfterMs)
      }
      if (known.status === 'not-registered') {
        return refuse(peer, 'policy-denied', 'EXECUTOR_NOT_REGISTERED')
      }
      if (known.status === 'peer-mismatch') return refuse(peer, 'bad-signature', 'peer-id-mismatch')
      // An executor one of whose audits reverted gets no key inline until the cut-off ends.
      const cutUntil = auditFailed.get(rec.executor)
      if (cutUntil !== undefined) {
        if (Date.now() < cutUntil) return refuse(peer, 'policy-denied', 'audit-failed')
        auditFailed.delete(rec.executor)
      }
      // Audits cannot land (the operator's side, docs/adr/0084): nobody gets a key inline.
      if (halt !== undefined) return refuse(peer, 'busy', 'audits-halted')
      mark('peer')
      const record = await keyStore.get(rec.capsuleId)
      if (record === undefined) return refuse(peer, 'unknown-capsule')
      mark('stored')
      if (!verifyAccessRequestSignature(req, domain)) return refuse(peer, 'bad-signature')
      mark('verified')
      const now = BigInt(Math.floor(Date.now() / 1000))
      if (req.expiry <= now) return refuse(peer, 'expired')
      const horizon = await expiryHorizon()
      if (horizon === undefined) return refuse(peer, 'busy', 'chain-unavailable', 1000)
      // The contract's audit window shorter than the margin: no expiry is both far enough for
      // the audit and inside the window, so every request is refused, and says so.
      if (horizon <= minAuditMargin) {
        if (!shortWindowWarned) {
          shortWindowWarned = true
          components.logger?.warn('fast path: the audit window leaves no room for the margin', {
            auditWindowSeconds: Number(horizon),
            minAuditMarginSeconds: Number(minAuditMargin),
            hint: 'The AccessController was deployed with an auditWindow shorter than minAuditMarginSeconds: every fast-path request is refused; executors use the chain path.',
          })
        }
        return refuse(peer, 'expired', 'no-audit-window')
      }
      // The audit must land before the expiry, in a block the chain's clock stamps: a request
      // that leaves it no margin would be served unaudited (ADR 0072).
      let chainTime: bigint
      try {
        chainTime = await chainNow()
      } catch (err) {
        if (err instanceof QuorumError) throw err
        return refuse(peer, 'busy', 'chain-unavailable', 1000)
      }
      if (req.expiry < (chainTime > now ? chainTime : now) + minAuditMargin) {
        return refuse(peer, 'expired', 'too-soon')
      }
      if (req.expiry > now + horizon) return refuse(peer, 'expired', 'too-far')
      const verdict = replays.check(
        rec.executor,
        accessRequestReplayKey(req),
        Number(req.expiry) * 1000,
      )
      if (verdict === 'replayed') return refuse(peer, 'replayed')
      if (verdict === 'full') return refuse(peer, 'busy', 'replay-quota', 1000)
      if (verdict !== 'fresh') return refuse(peer, 'expired')
      const keys = gateKeys(rec.capsuleId, rec.executor, rec.fee)
      const grantIdAt = (runIndex: bigint) =>
        computeGrantId({
          ...rec,
          chainId: chain.chainId,
          accessController: chain.accessController,
          runIndex,
        }).toLowerCase()
      // attested(): the challenge runs outside the capsule's lock (attest-outside-lock.ts).
      let runIndexSeen: bigint | undefined
      for (let round = 1; ; round++) {
        let attested: string | undefined
        try {
          attested = await attestOutsideLock(gate, {
            capsuleId: rec.capsuleId,
            executor: rec.executor,
            peer: remote,
            ephemeralKey: req.ephemeralKey,
            grantIdAt,
            runIndex: async () => {
              if (runIndexSeen !== undefined) return runIndexSeen
              const runs = await chain.runCount(rec.capsuleId)
              const floor = minRuns.get(rec.capsuleId) ?? 0n
              return runs > floor ? runs : floor
            },
          })
        } catch (err) {
          if (!(err instanceof NotAttestedError)) throw err
          return refuse(peer, 'not-attested', notAttestedReason(err))
        }
        if (attested !== undefined) mark('attested')
        const answer = await evaluateLocked(req, rec, record, peer, keys, started, mark, attested)
        if (!('retryAt' in answer)) return answer
        if (round >= MAX_ATTEST_ROUNDS) return refuse(peer, 'busy', 'attestation-raced', 1000)
        runIndexSeen = answer.retryAt
      }
    }

    /**
     * Under the capsule's (and paying executor's) lock: the chain's verdict, the grant id, the
     * unwrap. `attested`: the grant id the accepted before-quote is bound to (attested() only);
     * when the run index moved since, `{ retryAt }` (the lock is given back first).
     */
    function evaluateLocked(
      req: AccessRequest,
      rec: ReturnType<typeof toRecord>,
      record: NonNullable<Awaited<ReturnType<typeof keyStore.get>>>,
      peer: string,
      keys: string[],
      started: number,
      mark: (stage: string) => void,
      attested: string | undefined,
    ): Promise<AccessResponse | { retryAt: bigint }> {
      return locks.run(keys, async () => {
        const idle = await audits.waitIdle(keys, started + pendingWaitMs)
        if (!idle) return refuse(peer, 'busy', 'audit-pending', 1000)
        mark('locked')
        // The audit entry (no key material) and the HPKE encapsulation are prepared while the
        // chain answers; the unwrap waits for the chain's yes.
        const base: AuditEntry = {
          version: 1,
          id: hexlify(keccak_256(accessRequestReplayKey(req))).slice(2),
          request: Object.fromEntries(
            Object.entries(rec).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]),
          ),
          jobParams: hexlify(req.jobParams),
          signature: hexlify(req.signature),
        }
        const auditFile = join(auditDir, `${base.id}.json`)
        const journaling = writeFileAtomic(
          auditFile,
          new TextEncoder().encode(`${JSON.stringify(base)}\n`),
        )
        const sending = hpkeSender(req.ephemeralKey)
        // Handled here so one failure is not an unhandled rejection of the others; all are
        // awaited (and rethrow) below.
        journaling.catch(() => undefined)
        sending.catch(() => undefined)
        let unwrapping: Promise<Uint8Array> | undefined
        let dataKey: Uint8Array | undefined
        try {
          const [capsule, used, access, runs] = await Promise.all([
            chain.capsuleRecord(rec.capsuleId),
            chain.nonceUsed(rec.executor, rec.capsuleId, rec.nonce),
            chain.checkAccess({
              capsuleId: rec.capsuleId,
              executor: rec.executor,
              ephemeralKey: rec.ephemeralKey,
              measurement: rec.measurement,
              feePaid: rec.fee,
              fastPath: true,
              jobParams: hexlify(req.jobParams),
            }),
            chain.runCount(rec.capsuleId),
          ])
          mark('chain')
          const refusal = ((): AccessResponse | undefined => {
            // The capsule is the owner's, under the policy it sealed (capsule-check.ts): a
            // squatter that registered the id first owns it on chain but not the key record.
            const mine = capsuleRefusal(record, capsule, init.owners)
            if (mine !== undefined) return refuse(peer, 'policy-denied', mine.reason)
            if (used) return refuse(peer, 'replayed', 'nonce-used-on-chain')
            // The on-chain half of `attested()`: no attestation record registered.
            if (!access.allowed && access.reason === Reason.NOT_ATTESTED) {
              return refuse(peer, 'not-attested', 'unregistered')
            }
            if (!access.allowed) return refuse(peer, 'policy-denied', reasonName(access.reason))
            // An RPC behind our own last receipt would hand out a stale run index.
            if (runs < (minRuns.get(rec.capsuleId) ?? 0n)) {
              return refuse(peer, 'busy', 'chain-lagging', 1000)
            }
            return undefined
          })()
          if (refusal !== undefined) {
            await journaling.catch(() => undefined)
            await rm(auditFile, { force: true })
            return refusal
          }
          const grantId = computeGrantId({
            chainId: chain.chainId,
            accessController: chain.accessController,
            capsuleId: rec.capsuleId,
            executor: rec.executor,
            ephemeralKey: rec.ephemeralKey,
            measurement: rec.measurement,
            runIndex: runs,
          }).toLowerCase()
          mark('authorized')
          if (attested !== undefined && attested !== grantId) {
            // attested(): the before-quote is bound to another run index than this grant's
            // (another grant of the capsule came first): challenged again, outside the lock.
            await journaling.catch(() => undefined)
            await rm(auditFile, { force: true })
            return { retryAt: runs }
          }
          // Authorized: only now the sealer (TPM) unwrap. Meanwhile the grant is recorded in the
          // release journal as served inline, so the `AccessGranted` log of its audit (and any
          // restart) finds it served instead of releasing it again.
          const served = components.journal.served(grantId, req.ephemeralKey, {
            capsuleId: rec.capsuleId,
          })
          served.catch(() => undefined)
          unwrapping = unwraps.run(() => unwrapDataKey(record.wrappedKeys, sealer))
          dataKey = await unwrapping
          mark('unwrapped')
          try {
            await served
          } catch (err) {
            if (!(err instanceof AlreadyReleasedError)) throw err
            await journaling.catch(() => undefined)
            await rm(auditFile, { force: true })
            return refuse(peer, 'busy', 'chain-lagging', 1000)
          }
          await journaling
          mark('journaled')
          const grantIdBytes = getBytes(grantId)
          const hpke = await (await sending).seal(dataKey, grantIdBytes)
          mark('sealed')
          // Counted as pending (the lock's next holder waits for it) before the lock is released.
          recordInBackground({ ...base, grantId, runIndex: runs.toString() })
          emit({
            type: 'fast-path-granted',
            grantId,
            capsuleId: rec.capsuleId,
            executor: rec.executor,
            ms: performance.now() - started,
          })
          return {
            status: 'granted',
            grantId: grantIdBytes,
            keyRelease: { grantId: grantIdBytes, capsuleId: req.capsuleId, hpke, fastPath: true },
          }
        } catch (err) {
          // Nothing left the keyguard: drop the audit entry once its write settled.
          await journaling.catch(() => undefined)
          await rm(auditFile, { force: true })
          throw err
        } finally {
          dataKey?.fill(0)
          // An unwrap still running after a failure is zeroed when it lands.
          if (dataKey === undefined) unwrapping?.then((k) => k.fill(0)).catch(() => undefined)
        }
      })
    }

    async function pendingEntries(): Promise<AuditEntry[]> {
      const out: AuditEntry[] = []
      for (const name of (await readdir(auditDir)).sort()) {
        if (!name.endsWith('.json') || name.startsWith('.')) continue
        const obj = await readJsonFile(join(auditDir, name))
        if (obj !== undefined && obj.version === 1) out.push(obj as unknown as AuditEntry)
      }
      return out
    }

    const server: FastPathServer = {
      async start() {
        await ensureDir(auditDir)
        await removeStaleTemps(auditDir)
        const pending = await pendingEntries()
        // Before the first request: an executor whose audit reverted stays cut off for the rest
        // of its cool-down (a time that does not parse counts as now: fail closed), and a restart
        // must not reopen a replay window: requests whose audit is not on chain yet (so
        // `nonceUsed` is still false) stay in the replay cache until they expire.
        for (const entry of pending) {
          if (entry.revertedAt !== undefined) {
            const at = Date.parse(entry.revertedAt)
            cutOff(
              entry.request.executor as string,
              (Number.isFinite(at) ? Math.min(at, Date.now()) : Date.now()) +
                auditFailureCooldownMs,
            )
          } else if (entry.operatorFailedAt !== undefined) {
            held.set(entry.id, entry)
          }
          replays.check(
            entry.request.executor as string,
            accessRequestReplayKey({
              executor: getBytes(entry.request.executor as string),
              nonce: getBytes(toBeHex(BigInt(entry.request.nonce as string), 32)),
            }),
            Number(entry.request.expiry) * 1000,
          )
        }
        // Audits that failed on the operator's side before the restart: halted until they land
        // (the fix worked) or expire unanswered (docs/adr/0084).
        const first = [...held.values()][0]
        if (first !== undefined) {
          const reason = first.operatorReason ?? 'reverted'
          halting(
            {
              reason,
              error: first.operatorError ?? 'error',
              since: first.operatorFailedAt ?? new Date().toISOString(),
              hint: haltHint(reason),
            },
            true,
          )
        }
        // Registered executors' peers, authenticated by the connection, are never cut.
        untrust = guard.trust((p) => directory.knowsPeer(p.toMultihash().bytes))
        unhandle = await handle(
          libp2p,
          fastPathProtocol,
          async (req, ctx) => {
            const peer = ctx.peer.toString()
            const peerBytes = ctx.peer.toMultihash().bytes
            const run = async (): Promise<AccessResponse> => {
              try {
                return await serve(req, peer, peerBytes, ctx.peer)
              } catch (err) {
                // RPCs that disagree (a laggard, a liar): nothing was served; worth a retry.
                if (err instanceof QuorumError) return refuse(peer, 'busy', 'rpc-quorum', 1000)
                throw err
              }
            }
            if (directory.knowsPeer(peerBytes)) {
              // A registered executor's peer (authenticated by the connection): its own lane.
              const rate = executorLimiter.take(peer)
              if (!rate.allowed) return refuse(peer, 'rate-limited', undefined, rate.retryAfterMs)
              const mine = executorActive.get(peer) ?? 0
              if (mine >= maxQueuePerExecutor) return refuse(peer, 'busy', 'queue-full', 100)
              executorActive.set(peer, mine + 1)
              try {
                return await run()
              } finally {
                const left = (executorActive.get(peer) ?? 1) - 1
                if (left > 0) executorActive.set(peer, left)
                else executorActive.delete(peer)
              }
            }
            const rate = limiter.take(peer)
            if (!rate.allowed) return refuse(peer, 'rate-limited', undefined, rate.retryAfterMs)
            if (active >= maxQueue) return refuse(peer, 'busy', 'queue-full', 100)
            active++
            try {
              return await run()
            } finally {
              active--
            }
          },
          {
            timeout: init.timeoutMs ?? 10_000,
            readTimeout: init.readTimeoutMs ?? 2000,
            // libp2p resets streams of one connection past this (default 32) before any check
            // of ours: room for an executor's whole queue, which then answers `busy` in order.
            maxInboundStreams: 2 * maxQueuePerExecutor,
            // Frames being read at once per peer: room for an executor's whole queue (its reads
            // pile up when a flood stalls the event loop); strangers together are held to
            // `maxReading`, from which registered executors' peers are exempt.
            maxReadingPerPeer: Math.max(init.maxReadingPerPeer ?? 4, maxQueuePerExecutor),
            maxReading: init.maxReading ?? 256,
            isTrustedPeer: (p) => directory.knowsPeer(p.toMultihash().bytes),
            guard,
          },
        )
        for (const entry of pending) recordInBackground(entry)
        auditsLoaded = true
        // Registered executors known before the first request (up to `startWaitMs`).
        await feed.start()
      },
      async stop() {
        await unhandle?.()
        unhandle = undefined
        untrust?.()
        untrust = undefined
        clearInterval(haltTimer)
        haltTimer = undefined
        await feed.stop()
        await Promise.allSettled([...recording])
      },
      async recordPending() {
        let n = 0
        for (const entry of await pendingEntries()) {
          // Landed and tracked until confirmed (re-sent by the tracking if a reorg drops it).
          if (kept.has(entry.id)) continue
          if (!audits.has(entry.id)) {
            const r = entry.request
            audits.add(
              entry.id,
              gateKeys(r.capsuleId as string, r.executor as string, BigInt(r.fee as string)),
            )
          }
          if ((await record(entry)) === 'recorded') n++
        }
        return n
      },
      async auditPending() {
        return (await pendingEntries()).filter((e) => !kept.has(e.id)).length
      },
      strangers: () => guard.stats(),
      halted: () => {
        if (halt === undefined) return undefined
        const { fromDisk: _fromDisk, ...h } = halt
        return h
      },
      chainGrant,
    }
    return server
  }
}
