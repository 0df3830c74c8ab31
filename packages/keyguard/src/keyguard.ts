/**
 * `createKeyguard(init)(components)`: the keyguard runtime — grant watcher → key releaser,
 * and the fast-path server — over components the caller builds (sealer, key store, release
 * journal, chain client, libp2p node).
 */
import type {
  ConnectionGuard,
  ConnectionGuardStats,
  ProtocolDialer,
  ProtocolRegistrar,
} from '@digicap/protocol'
import type { ChainClient, GrantLog } from './chain/chain-client.ts'
import type { Finality } from './chain/confirmed-block.ts'
import { type FinalityLag, finalityLagError, finalityLagReader } from './chain/finality-lag.ts'
import { KeyguardStateError } from './errors.ts'
import {
  type FastPathEvent,
  type FastPathHalt,
  type FastPathInit,
  type FastPathServer,
  fastPathServer,
} from './fast-path/fast-path-server.ts'
import { type AttestationGateInit, attestationGate } from './release/attestation-gate.ts'
import { committeeGate } from './release/committee-gate.ts'
import { type GrantWatcher, type GrantWatcherEvent, grantWatcher } from './release/grant-watcher.ts'
import { type KeyReleaser, keyReleaser, type ReleaseEvent } from './release/key-releaser.ts'
import type { ReleaseJournal } from './release/release-journal.ts'
import type { Sealer, SealerDescription } from './sealers/sealer.ts'
import { removeStaleTemps } from './store/fs-atomic.ts'
import type { KeyStore } from './store/key-store.ts'
import type { Logger } from './types.ts'

export interface KeyguardInit {
  /** The keyguard's data directory (grant cursor, fast-path audit journal). */
  dataDir: string
  /** Blocks a grant must be buried under. 0 on anvil; a few on a real chain. */
  confirmations: number
  /**
   * `finalized` (or `safe`): a grant, a committee verdict and a fast-path audit count only once
   * their block is also at or below the chain's block of that tag, which the chain's consensus
   * will not reorg (ADR 0082). Default `latest`: `confirmations` alone, a bet on reorg depth.
   */
  finality?: Finality
  /** First block to scan when there is no cursor (the AccessController's deployment block). */
  startBlock?: number
  /** Grant watcher poll period, ms. Default 1000. */
  pollIntervalMs?: number
  /**
   * With `finality` `safe` / `finalized`: how often the confirmed block's lag behind the head is
   * measured again while running, ms (a `finality-lag` event when it crosses half the
   * `grantWindow`; `start()` refuses such a lag with `FinalityLagError`). Default 60 000.
   */
  finalityCheckMs?: number
  /**
   * The owner accounts whose capsules this keyguard serves, for key records that do not name
   * their owner in `metadata.owner` (records stored before ADR 0071). Both paths release a key
   * only when the capsule's on-chain owner is the record's owner (and its policy the record's
   * `metadata.policy`, when named); else the grant is refused `not-owner` (`policy-mismatch`).
   * Default none: a record that names no owner is served to nobody.
   */
  owners?: readonly string[]
  /** Releases pushed at the same time. Default 4. */
  maxConcurrentReleases?: number
  /** Time limit of one key-release push, ms. Default 5000. */
  releaseAttemptTimeoutMs?: number
  /**
   * The `attested()` gate both paths share (one quote-clock memory per executor): the time
   * limit of one challenge (`timeoutMs`, default 5000), how many executors' clocks are held
   * (`maxExecutors`), and the chain path's challenges to an executor that does not answer
   * before its grant is refused (`attempts`, default 3).
   */
  attestation?: AttestationGateInit & { attempts?: number }
  /**
   * The chain path waits for the committee (ADR 0033): an `attested()` capsule's key goes out
   * only once the AttestationHub holds a pass "before" verdict for the grant's job,
   * `confirmations` blocks deep, instead of after the keyguard's own challenge (the fast path
   * still challenges). Needs a chain client that knows the hub (`addresses.attestationHub`).
   * `verdictPollMs`: how often a held grant looks again (default 2000).
   */
  committee?: { verdictPollMs?: number }
  /**
   * The fast path: `enabled`, plus any {@link FastPathInit} option (`maxExpirySeconds`, `rate`,
   * `maxQueue`, `pendingWaitMs`, `maxUnwraps`, `peerCacheMs`, ...); the data dir is the keyguard's.
   */
  fastPath?: { enabled: boolean } & Omit<FastPathInit, 'dataDir'>
}

export interface KeyguardComponents {
  sealer: Sealer
  keyStore: KeyStore
  journal: ReleaseJournal
  chain: ChainClient
  libp2p: ProtocolDialer & ProtocolRegistrar
  /**
   * The fast path's connection guard: build it with `createConnectionGuard` before the libp2p
   * node and pass its `gater` as the node's `connectionGater`, so that strangers cut for
   * flooding are refused at the handshake. Default: the fast path's own (cuts, no gater).
   */
  guard?: ConnectionGuard
  logger?: Logger
}

/**
 * The confirmed block's lag crossed the limit while running (docs/adr/0082 amendment 2): with
 * `lagging`, chain grants expire before the keyguard sees them (what `start()` refuses with
 * `FinalityLagError`); without, it is back under the limit.
 */
export type FinalityLagEvent = {
  type: 'finality-lag'
  lagging: boolean
  hint?: string
} & FinalityLag

/** Every event the keyguard dispatches on `events` (`type` is the DOM event type). */
export type KeyguardEvent = ReleaseEvent | FastPathEvent | GrantWatcherEvent | FinalityLagEvent

/** `keyguard.status()`: what `pi-node status --json` shows. Never secret. */
export interface KeyguardStatus {
  running: boolean
  sealer: SealerDescription
  chain: {
    chainId: string
    accessController: string
    head: number | null
    cursor: { number: number; hash: string } | null
    confirmations: number
    /** ADR 0082. */
    finality: Finality
    /** The confirmed block's last measured lag (`safe` / `finalized` only). */
    finalityLag?: FinalityLag & { lagging: boolean }
  }
  releases: { pending: number; inFlight: number }
  fastPath: {
    enabled: boolean
    auditPending: number
    strangers?: ConnectionGuardStats
    /** Why every fast-path request is refused now (docs/adr/0084); absent while it serves. */
    halted?: FastPathHalt
  }
  counters: Record<string, number>
}

export interface Keyguard {
  /**
   * Checks the chain id, re-serves journaled releases, starts the grant watcher and (if
   * enabled) the fast path.
   * @throws {ChainMismatchError} if the RPC serves another chain (nothing is started).
   * @throws {FinalityLagError} with `finality` `safe` / `finalized`, when the confirmed block
   *   trails the head by more than half the AccessController's `grantWindow` (nothing is started).
   * @throws {KeyguardStateError} if already running.
   */
  start(): Promise<void>
  /** Stops the watcher, the fast path and in-flight releases. Idempotent. */
  stop(): Promise<void>
  status(): Promise<KeyguardStatus>
  /** Scans for grants now (tests, CLI). Returns how many grant logs were handed over. */
  poll(): Promise<number>
  /** Resolves when no release is queued or running. */
  idle(): Promise<void>
  /** `CustomEvent`s typed by {@link KeyguardEvent}: `detail` is the event object. */
  readonly events: EventTarget
}

/**
 * Builds a keyguard.
 *
 * @example
 * ```ts
 * const keyguard = createKeyguard({ dataDir, confirmations: 2, fastPath: { enabled: true } })({
 *   sealer, keyStore, journal, chain, libp2p,
 * })
 * keyguard.events.addEventListener('released', (e) => log((e as CustomEvent).detail))
 * await keyguard.start()
 * ```
 */
export function createKeyguard(init: KeyguardInit) {
  return (components: KeyguardComponents): Keyguard => {
    const { sealer, keyStore, journal, chain, libp2p, logger } = components
    const events = new EventTarget()
    const counters: Record<string, number> = {}
    const emit = (e: KeyguardEvent): void => {
      counters[e.type] = (counters[e.type] ?? 0) + 1
      events.dispatchEvent(new CustomEvent(e.type, { detail: e }))
    }
    // One gate for both paths: an executor's quotes are checked in order, whichever path asks.
    const { attempts: attestAttempts, ...gateInit } = init.attestation ?? {}
    const attestation = attestationGate(gateInit)({ chain, libp2p })
    const committee =
      init.committee === undefined
        ? undefined
        : committeeGate({
            confirmations: init.confirmations,
            ...(init.finality === undefined ? {} : { finality: init.finality }),
          })({ chain })
    const owners = init.owners === undefined ? {} : { owners: init.owners }
    const releaser: KeyReleaser = keyReleaser({
      ...owners,
      ...(init.maxConcurrentReleases === undefined
        ? {}
        : { maxConcurrent: init.maxConcurrentReleases }),
      ...(init.releaseAttemptTimeoutMs === undefined
        ? {}
        : { attemptTimeoutMs: init.releaseAttemptTimeoutMs }),
      ...(attestAttempts === undefined ? {} : { attestAttempts }),
      ...(init.committee?.verdictPollMs === undefined
        ? {}
        : { verdictPollMs: init.committee.verdictPollMs }),
    })({
      sealer,
      keyStore,
      journal,
      chain,
      libp2p,
      attestation,
      ...(committee === undefined ? {} : { committee }),
      // ADR 0073: a chain grant waits for the fast path's audits of its capsule, and is refused
      // when a fast-path key released before it took its run (maxRuns). `fast` is built below.
      runGuard: (grant) => fast?.chainGrant(grant) ?? Promise.resolve('serve'),
      onEvent: emit,
      ...(logger ? { logger } : {}),
    })
    const watcher: GrantWatcher = grantWatcher({
      dataDir: init.dataDir,
      confirmations: init.confirmations,
      ...(init.finality === undefined ? {} : { finality: init.finality }),
      ...(init.startBlock === undefined ? {} : { startBlock: init.startBlock }),
      ...(init.pollIntervalMs === undefined ? {} : { pollIntervalMs: init.pollIntervalMs }),
    })({
      chain,
      keyStore,
      onGrant: async (log: GrantLog) => {
        await releaser.accept(log)
      },
      onEvent: emit,
      ...(logger ? { logger } : {}),
    })
    const fastEnabled = init.fastPath?.enabled === true
    const fast: FastPathServer | undefined = fastEnabled
      ? fastPathServer({
          ...owners,
          ...fastPathOptions(init.fastPath),
          // Registered executors are read from the same block the grant watcher starts at.
          registrations: {
            ...(init.startBlock === undefined ? {} : { startBlock: init.startBlock }),
            ...init.fastPath?.registrations,
          },
          dataDir: init.dataDir,
          confirmations: init.confirmations,
          ...(init.finality === undefined ? {} : { finality: init.finality }),
        })({
          sealer,
          keyStore,
          journal,
          chain,
          libp2p,
          attestation,
          ...(components.guard ? { guard: components.guard } : {}),
          onEvent: emit,
          ...(logger ? { logger } : {}),
        })
      : undefined
    let running = false
    const readLag = finalityLagReader(
      {
        confirmations: init.confirmations,
        ...(init.finality === undefined ? {} : { finality: init.finality }),
      },
      chain,
    )
    let lastLag: (FinalityLag & { lagging: boolean }) | undefined
    let lagTimer: ReturnType<typeof setInterval> | undefined
    /** Measures the lag; tells when it crosses the limit. Returns the error when over it. */
    const checkLag = async () => {
      if (readLag === undefined) return undefined
      const lag = await readLag()
      const err = finalityLagError(lag)
      const lagging = err !== undefined
      const was = lastLag?.lagging ?? false
      lastLag = { ...lag, lagging }
      if (lagging !== was && running) {
        const hint = err?.hint
        emit({ type: 'finality-lag', lagging, ...lag, ...(hint === undefined ? {} : { hint }) })
        if (lagging) logger?.warn(`keyguard: ${err?.shortMessage}`, { ...lag, hint })
        else
          logger?.info('keyguard: the confirmed block is back within the grant window', { ...lag })
      }
      return err
    }

    return {
      events,
      async start() {
        if (running) throw new KeyguardStateError('The keyguard is running')
        const description = await sealer.describe()
        if (description.warning !== undefined) logger?.warn(description.warning)
        // A crash between a temp write and its rename (the grant cursor) leaves a `.tmp-*`.
        await removeStaleTemps(init.dataDir)
        await watcher.start()
        running = true
        try {
          // A confirmed block that trails the head by most of the grant window would let every
          // chain grant expire before it is seen (docs/adr/0082 amendment 2): refuse to start.
          const lagging = await checkLag()
          if (lagging !== undefined) throw lagging
          if (readLag !== undefined) {
            lagTimer = setInterval(
              () => void checkLag().catch(() => undefined),
              init.finalityCheckMs ?? 60_000,
            )
            lagTimer.unref?.()
          }
          await releaser.resumePending()
          await fast?.start()
        } catch (err) {
          running = false
          clearInterval(lagTimer)
          await watcher.stop()
          await releaser.stop()
          throw err
        }
      },
      async stop() {
        running = false
        clearInterval(lagTimer)
        await watcher.stop()
        await fast?.stop()
        await releaser.stop()
      },
      async status() {
        const cursor = watcher.cursor()
        return {
          running,
          sealer: await sealer.describe(),
          chain: {
            chainId: chain.chainId.toString(),
            accessController: chain.accessController,
            head: watcher.head() ?? null,
            cursor: cursor ?? null,
            confirmations: init.confirmations,
            finality: init.finality ?? 'latest',
            ...(lastLag === undefined ? {} : { finalityLag: lastLag }),
          },
          releases: { pending: (await journal.pending()).length, inFlight: releaser.pending },
          fastPath: {
            enabled: fastEnabled,
            auditPending: fast ? await fast.auditPending() : 0,
            ...(fast ? { strangers: fast.strangers() } : {}),
            ...((h) => (h === undefined ? {} : { halted: h }))(fast?.halted()),
          },
          counters: { ...counters },
        }
      },
      poll: () => watcher.poll(),
      idle: () => releaser.idle(),
    }
  }
}

function fastPathOptions(fastPath: KeyguardInit['fastPath']): Omit<FastPathInit, 'dataDir'> {
  if (fastPath === undefined) return {}
  const { enabled: _enabled, ...options } = fastPath
  return options
}
