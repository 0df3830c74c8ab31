/**
 * The executor's composition: loader → access requester → open → sandbox → result delivery →
 * clean-up, one workspace per run, stages announced for progress displays.
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  checkKeyCommitment,
  type DigicapSigner,
  equalBytes,
  requestMeasurement,
  runtimeDigest,
  toHex,
  warmFileLanes,
} from '@digicap/capsule-core'
import type { CapsuleStore } from '@digicap/p2p'
import { addressToBytes, type StreamGateStats } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { encode } from 'cborg'
import {
  acquireKey,
  createReleaseInbox,
  type ReleaseInbox,
  type ReleaseInboxEvent,
} from './access/requester.ts'
import type { ExecutorChain } from './chain.ts'
import {
  createResultDeliverer,
  type Delivery,
  type ResultDelivererInit,
} from './delivery/deliverer.ts'
import type { PendingDeliveryStore } from './delivery/pending-file.ts'
import { findRecordedGrant } from './delivery/recorded-grant.ts'
import { CapsuleUnverifiedError, ExecutorStateError } from './errors.ts'
import { type FetchProgress, type LoadedCapsule, loadCapsule } from './load/loader.ts'
import type { RunAttestationAgent } from './run/attestation.ts'
import type { RunLifecycle } from './run/lifecycle.ts'
import { openJob, opensToFile, plaintextRootOf } from './run/open-job.ts'
import { runInSandbox } from './run/run.ts'
import { createRunTurns, type RunTurn } from './run/turns.ts'
import { type CleanupReport, createRunWorkspace, type RunWorkspace } from './run/workspace.ts'
import type { RuntimePolicy } from './sandbox/runtime.ts'
import { type SandboxSet, sandboxFor } from './sandbox/select.ts'

/** The stages of one run, in order. */
export type RunStage =
  | 'fetch'
  | 'verify'
  | 'grant'
  | 'release'
  | 'open'
  | 'run'
  | 'deliver'
  | 'cleanup'

/** One progress report: a stage started, or finished after `ms`. */
export interface StageEvent {
  readonly stage: RunStage
  readonly status: 'start' | 'done'
  readonly ms?: number | undefined
  /** Non-secret facts: bytes fetched, path, grant id, deliveries. */
  readonly detail?: Record<string, unknown> | undefined
}

export interface RunCapsuleOptions {
  /** Try the keyguard's fast path first (default: the executor's `fast`). */
  readonly fast?: boolean | undefined
  /** After a fast-path failure other than `policy-denied`, use the chain (default true). */
  readonly fallbackToChain?: boolean | undefined
  /** Wei sent with the access request. Default 0. */
  readonly fee?: bigint | undefined
  /** Job parameters the policy sees. Default empty. */
  readonly jobParams?: Uint8Array | undefined
  /** Program arguments (`digicap.args`, WASI argv). */
  readonly args?: readonly string[] | undefined
  /** Extra multiaddrs of the keyguard to dial first. */
  readonly keyguardAddrs?: readonly string[] | undefined
  readonly onStage?: ((e: StageEvent) => void) | undefined
  /** Called as the capsule fetch progresses (bytes, peers asked), e.g. to show it is alive. */
  readonly onFetchProgress?: ((progress: FetchProgress) => void) | undefined
  /** Fetch idle timeout for this run, ms (default: the executor's `fetchTimeoutMs`). */
  readonly fetchTimeoutMs?: number | undefined
  readonly signal?: AbortSignal | undefined
}

export interface RunTimings {
  fetch: number
  verify: number
  grant: number
  release: number
  open: number
  run: number
  deliver: number
  cleanup: number
}

export interface RunCapsuleResult {
  /** 32-byte run id, hex (also the result delivery's run id). */
  readonly runId: string
  readonly capsuleId: string
  /**
   * The grant on chain the results name (hex). On the fast path, the id the keyguard's audit was
   * recorded under, which differs from the keyguard's answer (the `grant` stage's `grantId`)
   * when a grant landed ahead of the audit (ADR 0073).
   */
  readonly grantId: string
  readonly path: 'fast' | 'chain'
  readonly result: Uint8Array
  readonly logs: readonly string[]
  readonly deliveries: readonly Delivery[]
  readonly timings: RunTimings
  readonly cleanup: CleanupReport
  readonly capsuleBytes: number
}

export interface ExecutorInit {
  /** Default for `runCapsule`'s `fast`. Default false (chain path). */
  readonly fast?: boolean | undefined
  readonly fallbackToChain?: boolean | undefined
  /** Keyguard multiaddrs to dial before requesting access (config `--keyguard-addr`). */
  readonly keyguardAddrs?: readonly string[] | undefined
  /** The measurement declared in access requests; default `environmentMeasurement(sandboxes)`. */
  readonly measurement?: Uint8Array | undefined
  readonly runtimePolicy?: RuntimePolicy | undefined
  /** Where run temp dirs go (a tmpfs keeps plaintext off disk). */
  readonly tmpRoot?: string | undefined
  /**
   * Where a run's plaintext file goes for sandboxes that read the payload from a file
   * (ADR 0035): a tmpfs or ramfs only. Default: `tmpRoot` if it is one, else `/dev/shm` if it
   * is one; with neither (or `false`) the payload is opened into memory.
   */
  readonly plaintextRoot?: string | false | undefined
  readonly fastTimeoutMs?: number | undefined
  /** Longest wait for a key release, ms. Default 120 000. */
  readonly maxReleaseWaitMs?: number | undefined
  /**
   * How long a fast-path run waits, before it delivers, for the keyguard's audit record to be
   * on chain (to name the grant id it was recorded under), ms. Default 30 000.
   */
  readonly auditWaitMs?: number | undefined
  readonly delivery?: ResultDelivererInit | undefined
  /**
   * Capsule fetch idle timeout, ms: the run fails with `CAPSULE_FETCH_TIMEOUT` when no byte
   * of the capsule arrives for this long. Default 120 000.
   */
  readonly fetchTimeoutMs?: number | undefined
  /**
   * With an attestation agent: how many runs may wait for the TPM's turn (one PCR 23) while
   * one runs; one more is refused with `RUN_QUEUE_FULL`. Default 8.
   */
  readonly maxWaitingRuns?: number | undefined
}

export interface ExecutorComponents {
  /** The executor's libp2p node (a DigicapNode's `libp2p`); its peer id is the registered one. */
  readonly libp2p: Libp2p
  readonly store: CapsuleStore
  readonly chain: ExecutorChain
  /**
   * The executor's Ethereum account: signs fast-path access requests and results (EIP-712).
   * Any signer fits (`privateKeySigner(key)`, a hardware or remote signer); its key need not be
   * in this process. Transactions (chain path) go through `chain`.
   */
  readonly signer: DigicapSigner
  readonly sandboxes: SandboxSet
  readonly lifecycle?: RunLifecycle | undefined
  /**
   * The TPM attestation agent (`@digicap/attestation/agent`'s fits). With it every run is
   * measured into PCR 23 and runs take turns on the TPM (ADR 0021); the access request then
   * declares SHA-256(runtime digest ‖ capsule header hash). Omitted: nothing changes.
   */
  readonly attestation?: RunAttestationAgent | undefined
  readonly logger?: { info(msg: string): void; warn(msg: string): void } | undefined
  /**
   * Keeps results waiting for offline receivers across restarts (`filePendingDeliveries`);
   * `start()` takes back what an earlier process left. Omitted: they live in this process.
   */
  readonly pendingDeliveries?: PendingDeliveryStore | undefined
  /**
   * Told the keyguard (base58 peer id) a run asks for its key: its attestation challenges are
   * expected while the run lasts (the node's attest endpoint trusts it, ADR 0067). Returns the
   * function called when the run ends.
   */
  readonly trustChallenger?: ((peer: string) => () => void) | undefined
  /**
   * Told each chain-path grant id as it is recorded: the committee the hub seats for it will
   * challenge the run (the node reads who sits on it and trusts them, ADR 0070).
   */
  readonly watchCommittee?: ((grantId: Uint8Array) => void) | undefined
}

export interface Executor {
  start(): Promise<void>
  stop(): Promise<void>
  readonly started: boolean
  /** The measurement this executor declares in access requests (hex). */
  readonly measurement: string
  /**
   * Fetch, verify, get the key, open, run, deliver, clean up.
   * @throws the loader's, access requester's and sandbox's typed errors; clean-up has run.
   */
  runCapsule(cid: string, options?: RunCapsuleOptions): Promise<RunCapsuleResult>
  /** Result deliveries waiting for their receiver to connect. */
  pendingDeliveries(): number
  /** Events of the key-release handler (`release-accepted`, `release-unknown`, `release-error`). */
  readonly events: EventTarget
  /** Load of the key-release inbox's stream gate (undefined before `start()`). */
  releaseInboxStats(): StreamGateStats | undefined
}

/**
 * The measurement of this host's run environment: SHA-256 of the canonical CBOR map
 * `{v: 1, runtimes: {kind: runtimeId}}` of the sandboxes it offers. The code is inside the
 * encrypted payload, so the request can only declare the environment; the run measurement
 * (runtime ‖ code ‖ payload) is extended after load (`after-load`). An owner who wants
 * `environment('0x…')` computes this value for the executors it trusts.
 *
 * @example
 * ```ts
 * const m = environmentMeasurement({ quickjs: quickjsSandbox(), wasi: wasiSandbox() })
 * ```
 */
export function environmentMeasurement(sandboxes: SandboxSet): Uint8Array {
  const runtimes: Record<string, string> = {}
  for (const kind of ['data', 'quickjs', 'wasi', 'oci'] as const) {
    const s = sandboxes[kind]
    if (s) runtimes[kind] = s.runtimeId
  }
  return new Uint8Array(
    createHash('sha256')
      .update(encode({ v: 1, runtimes }))
      .digest(),
  )
}

function timedWorkspace(ws: RunWorkspace, onDispose: (ms: number) => void): RunWorkspace {
  return {
    tempDir: (p, root) => ws.tempDir(p, root),
    trackBuffer: (b) => ws.trackBuffer(b),
    trackFile: (f) => ws.trackFile(f),
    trackHandle: (c) => ws.trackHandle(c),
    recordZeroed: (n, b) => ws.recordZeroed(n, b),
    get disposed() {
      return ws.disposed
    },
    async dispose() {
      const t0 = performance.now()
      const r = await ws.dispose()
      onDispose(performance.now() - t0)
      return r
    },
  }
}

/**
 * @example
 * ```ts
 * const executor = createExecutor({ fast: true })({ libp2p: node.libp2p, store, chain, signer, sandboxes })
 * await executor.start()
 * const { result, timings } = await executor.runCapsule(cid)
 * ```
 */
export function createExecutor(init: ExecutorInit = {}) {
  return (components: ExecutorComponents): Executor => {
    const { libp2p, store, chain, signer, sandboxes, lifecycle, attestation } = components
    if (typeof signer?.signTypedData !== 'function') {
      throw new ExecutorStateError('The executor has no signer', {
        hint: 'Pass `signer` (a DigicapSigner, e.g. privateKeySigner(key)) in the components.',
      })
    }
    const measurement = init.measurement ?? environmentMeasurement(sandboxes)
    const turns = attestation
      ? createRunTurns(attestation, { maxWaiting: init.maxWaitingRuns })
      : undefined
    const events = new EventTarget()
    let inbox: (ReleaseInbox & { stats(): StreamGateStats }) | undefined
    const deliverer = createResultDeliverer(init.delivery)({
      libp2p,
      store,
      domain: {
        chainId: chain.chainId,
        verifyingContract: chain.accessController as `0x${string}`,
      },
      signer,
      pending: components.pendingDeliveries,
    })

    const runCapsule = async (
      cid: string,
      options: RunCapsuleOptions = {},
    ): Promise<RunCapsuleResult> => {
      if (!inbox) throw new ExecutorStateError('Call start() before runCapsule()')
      const stage = (e: StageEvent): void => {
        try {
          options.onStage?.(e)
        } catch {
          // a failing progress display must not fail the run
        }
      }
      const timings: RunTimings = {
        fetch: 0,
        verify: 0,
        grant: 0,
        release: 0,
        open: 0,
        run: 0,
        deliver: 0,
        cleanup: 0,
      }
      const runIdBytes = new Uint8Array(randomBytes(32))
      const runId = toHex(runIdBytes)
      const ws = timedWorkspace(createRunWorkspace({ tmpRoot: init.tmpRoot }), (ms) => {
        timings.cleanup = ms
      })
      let cleanup: CleanupReport | undefined
      let turn: RunTurn | undefined
      let untrust: (() => void) | undefined
      try {
        // Dial the configured keyguard/capsule hosts first: bitswap asks connected peers, and
        // identify tells the keyguard our listen addresses so it can push the release.
        for (const a of [...(init.keyguardAddrs ?? []), ...(options.keyguardAddrs ?? [])]) {
          await libp2p.dial(multiaddr(a), { signal: AbortSignal.timeout(5000) }).catch(() => {})
        }
        // fetch + verify
        stage({ stage: 'fetch', status: 'start', detail: { cid } })
        let t = performance.now()
        const dir = await ws.tempDir('capsule-')
        const loaded: LoadedCapsule = await loadCapsule({
          cid,
          store,
          chain,
          dir,
          sandboxes,
          runtimePolicy: init.runtimePolicy,
          timeoutMs: options.fetchTimeoutMs ?? init.fetchTimeoutMs,
          onProgress: options.onFetchProgress,
          signal: options.signal,
        })
        // The ciphertext is public (anyone can fetch it by its CID): removed, not overwritten.
        ws.trackFile(loaded.path, { overwrite: false })
        timings.fetch = performance.now() - t
        timings.verify = loaded.verifyMs
        stage({
          stage: 'fetch',
          status: 'done',
          ms: timings.fetch,
          detail: { bytes: loaded.bytes },
        })
        stage({
          stage: 'verify',
          status: 'done',
          ms: timings.verify,
          detail: { owner: loaded.parsed.header.owner },
        })
        const { header } = loaded.parsed
        let keyguardPeer: ReturnType<typeof peerIdFromString>
        try {
          keyguardPeer = peerIdFromString(header.keyguard.peerId)
        } catch (cause) {
          throw new CapsuleUnverifiedError('The header names no valid keyguard peer id', { cause })
        }
        untrust = components.trustChallenger?.(keyguardPeer.toString())
        await libp2p.dial(keyguardPeer, { signal: AbortSignal.timeout(5000) }).catch(() => {})
        const sandbox = sandboxFor(loaded.runtime, sandboxes)
        const plaintextRoot = plaintextRootOf(init)
        // An open to a file runs on worker lanes from 32 MiB: they boot now, while the key is
        // granted and released (ADR 0104). Into memory, none would be used.
        plaintextRoot.then(
          (root) => {
            if (opensToFile(root, sandbox, loaded.runtime))
              warmFileLanes({ size: header.payload.plaintextSize })
          },
          () => {},
        )
        // ADR 0021: an attested run declares what PCR 23 will open, and holds the TPM (PCR 23
        // at reset, checked) from before its request, when a keyguard may ask for a before-quote.
        const runtime = runtimeDigest(sandbox.runtimeId, loaded.runtime)
        const runMeasurement = attestation
          ? requestMeasurement(runtime, loaded.parsed.headerHash)
          : measurement
        if (turns) turn = await turns.take(options.signal)

        // grant + release
        stage({ stage: 'grant', status: 'start' })
        t = performance.now()
        let grantAt = t
        const fast = options.fast ?? init.fast ?? false
        const key = await acquireKey({
          libp2p,
          inbox,
          chain,
          signer,
          keyguardPeer,
          capsuleId: header.capsuleId,
          verifyKey: (dataKey) => checkKeyCommitment(loaded.parsed, dataKey),
          measurement: runMeasurement,
          jobParams: options.jobParams ?? new Uint8Array(0),
          fee: options.fee ?? 0n,
          fast,
          fallbackToChain: options.fallbackToChain ?? init.fallbackToChain ?? true,
          fastTimeoutMs: init.fastTimeoutMs ?? 10_000,
          maxReleaseWaitMs: init.maxReleaseWaitMs ?? 120_000,
          signal: options.signal,
          onGrant: (path, grantId) => {
            if (path === 'chain') components.watchCommittee?.(grantId)
            grantAt = performance.now()
            timings.grant = grantAt - t
            stage({
              stage: 'grant',
              status: 'done',
              ms: timings.grant,
              detail: { path, grantId: toHex(grantId) },
            })
            stage({ stage: 'release', status: 'start' })
          },
          onFallback: (err) => {
            components.logger?.warn(`fast path failed (${err.code}); using the chain path`)
            stage({ stage: 'grant', status: 'start', detail: { fallback: err.code } })
          },
        })
        ws.trackBuffer(key.dataKey)
        ws.trackBuffer(key.ephemeral.privateKey)
        timings.release = performance.now() - grantAt
        stage({ stage: 'release', status: 'done', ms: timings.release, detail: { path: key.path } })

        // open (ADR 0035): to the run's plaintext file on a tmpfs when the sandbox reads files
        // and one is at hand, so memory stays flat in the capsule's size; else into memory.
        stage({ stage: 'open', status: 'start' })
        t = performance.now()
        const job = await openJob({
          loaded,
          sandbox,
          dataKey: key.dataKey,
          args: options.args,
          workspace: ws,
          plaintextRoot: await plaintextRoot,
        })
        timings.open = performance.now() - t
        stage({
          stage: 'open',
          status: 'done',
          ms: timings.open,
          detail: {
            bytes: loaded.parsed.header.payload.plaintextSize,
            to: job.inputFile ? 'tmpfs-file' : 'memory',
          },
        })

        // run (runInSandbox disposes of the workspace and emits after-cleanup)
        stage({ stage: 'run', status: 'start', detail: { kind: loaded.runtime.kind } })
        t = performance.now()
        const ran = await runInSandbox({
          sandbox,
          job,
          lifecycle,
          workspace: ws,
          runId,
          signal: options.signal,
          ...(attestation
            ? {
                measure: {
                  agent: attestation,
                  values: {
                    runtimeDigest: runtime,
                    capsuleHeaderHash: loaded.parsed.headerHash,
                    grantId: key.grantId,
                    ephemeralPublicKey: key.ephemeral.publicKey,
                  },
                  keyBuffers: [key.dataKey, key.ephemeral.privateKey],
                },
              }
            : {}),
        })
        cleanup = ran.cleanup
        timings.run = performance.now() - t - timings.cleanup
        stage({
          stage: 'run',
          status: 'done',
          ms: timings.run,
          detail: { outputBytes: ran.result.output.byteLength },
        })
        stage({ stage: 'cleanup', status: 'done', ms: timings.cleanup, detail: { ...cleanup } })

        // deliver
        stage({ stage: 'deliver', status: 'start', detail: { receivers: header.receivers.length } })
        t = performance.now()
        // A fast-path grant is recorded on chain by the keyguard's audit, at the run index the
        // chain has when it is mined: another id than the answered one when a grant landed
        // first (ADR 0073). Receivers look the grant up by id, so the result names the record.
        let grantId = key.grantId
        const getGrant = chain.getGrant?.bind(chain)
        const runCount = chain.runCount?.bind(chain)
        if (key.path === 'fast' && getGrant !== undefined && runCount !== undefined) {
          const recorded = await findRecordedGrant(
            { getGrant, runCount },
            {
              domain: {
                chainId: chain.chainId,
                verifyingContract: chain.accessController as `0x${string}`,
              },
              capsuleId: header.capsuleId,
              executor: addressToBytes(signer.address),
              ephemeralKey: key.ephemeral.publicKey,
              measurement: runMeasurement,
              grantId: key.grantId,
              waitMs: init.auditWaitMs,
              signal: options.signal,
            },
          ).catch((err: unknown) => {
            components.logger?.warn(`fast-path grant lookup failed: ${String(err)}`)
            return undefined
          })
          if (recorded === undefined) {
            components.logger?.warn('fast-path grant not on chain yet; delivering under its answer')
          } else if (!equalBytes(recorded, key.grantId)) {
            grantId = recorded
            stage({
              stage: 'deliver',
              status: 'start',
              detail: { receivers: header.receivers.length, recordedGrantId: toHex(recorded) },
            })
          }
        }
        const deliveries = await deliverer.deliver(
          {
            runId: runIdBytes,
            capsuleId: header.capsuleId,
            grantId,
            measurement: runMeasurement,
            runMeasurement: ran.measurements.run,
          },
          header.receivers,
          ran.result.output,
        )
        timings.deliver = performance.now() - t
        stage({ stage: 'deliver', status: 'done', ms: timings.deliver, detail: { deliveries } })
        return {
          runId,
          capsuleId: toHex(header.capsuleId),
          grantId: toHex(grantId),
          path: key.path,
          result: ran.result.output,
          logs: ran.result.logs,
          deliveries,
          timings,
          cleanup: ran.cleanup,
          capsuleBytes: loaded.bytes,
        }
      } finally {
        if (!ws.disposed) {
          cleanup = await ws.dispose()
          stage({ stage: 'cleanup', status: 'done', ms: timings.cleanup, detail: { ...cleanup } })
          await lifecycle?.emit('after-cleanup', { runId, report: cleanup }).catch(() => {})
        }
        turn?.release()
        untrust?.()
      }
    }

    return {
      events,
      get started() {
        return inbox !== undefined
      },
      measurement: toHex(measurement),
      async start() {
        if (inbox) return
        inbox = await createReleaseInbox(libp2p, (e: ReleaseInboxEvent) => {
          events.dispatchEvent(new CustomEvent(e.type, { detail: e }))
        })
        // What an earlier process (or one killed) left for offline receivers goes out from here.
        const { restored, skipped } = await deliverer.restore().catch((err: unknown) => {
          components.logger?.warn(`pending results not restored: ${String(err)}`)
          return { restored: 0, skipped: [] as string[] }
        })
        if (restored > 0) components.logger?.info(`${restored} pending result(s) restored`)
        if (skipped.length > 0)
          components.logger?.warn(
            `pending result files skipped (unreadable): ${skipped.join(', ')}`,
          )
      },
      async stop() {
        deliverer.stop()
        await inbox?.stop()
        inbox = undefined
      },
      runCapsule,
      pendingDeliveries: () => deliverer.pending(),
      releaseInboxStats: () => inbox?.stats(),
    }
  }
}
