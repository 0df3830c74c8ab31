/**
 * `openReceiver`: a libp2p node that takes results sealed to one X25519 key, each checked
 * against the grant on chain (signed by the executor the grant names, for that grant and
 * capsule, once), and opened. Needs no executor, compiler or chain binary.
 */
import { InvalidArgumentError, toHex, x25519PublicKey } from '@digicap/capsule-core'
import { writeJsonAtomic } from '@digicap/cli-kit'
import { createDigicapNode, heliaCapsuleStore, privateKeyFromSeed } from '@digicap/p2p'
import { fileResultReplays, headerResultCapsules, type ResultReplayStore } from '@digicap/protocol'
import { ResultTimeoutError } from '../errors.ts'
import { getNetwork, type NetworkRef } from '../networks/registry.ts'
import { chainCapsuleRegistry, chainResultGrants, checkChainId } from './chain-grants.ts'
import { createResultReceiver, type ReceivedResult } from './result-receiver.ts'

export type { ReceivedResult }

/** The longest a Node timer waits (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

export interface OpenReceiverParameters {
  /** `'local'`, a registered name or chain id, or a network object. */
  readonly network: NetworkRef
  /** Use this RPC instead of the network's own. */
  readonly rpcUrl?: string | undefined
  /**
   * More RPCs of the same chain (distinct providers). Grants and capsules are then taken only
   * when a quorum of all the RPCs gives the same answer: one lying RPC is outvoted. With one
   * RPC, that RPC is trusted for what a grant names.
   */
  readonly rpcUrls?: readonly string[] | undefined
  /** How many RPCs must agree. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
  /** Read grants and capsules this many blocks below the head (reorg depth). Default 0. */
  readonly confirmations?: number | undefined
  /** The receiver's X25519 private key (32 bytes; `generateReceiverKey()` makes one). */
  readonly key: Uint8Array
  /** A 32-byte seed for a stable libp2p identity (so that capsules can name this peer). Default: fresh. */
  readonly identity?: Uint8Array | undefined
  /** Default `['/ip4/127.0.0.1/tcp/0']`. */
  readonly listen?: readonly string[] | undefined
  /** Peers to dial at start (`/…/p2p/<peerId>` multiaddrs). */
  readonly bootstrap?: readonly string[] | undefined
  /**
   * A JSON file that keeps the run and grant ids of the results taken (`fileResultReplays`,
   * written atomically before each result is acknowledged), so that a delivery replayed after
   * a restart is refused `replayed`. Without it (and without `replays`), "once" means once per
   * process: a restarted receiver takes a result it already took again.
   */
  readonly replayFile?: string | undefined
  /** Another durable replay memory (instead of `replayFile`). */
  readonly replays?: ResultReplayStore | undefined
}

/** Which results a call takes (the others are kept for later calls). */
export interface ResultFilter {
  /** Only this run's result (hex run id, as `runCapsule` returns it). Default: any run. */
  readonly runId?: string | undefined
  /** Only results of this capsule (hex capsule id, `sealAndPublish`'s `capsuleId`). Default: any capsule that names this receiver. */
  readonly capsuleId?: string | undefined
}

export interface WaitForResultOptions extends ResultFilter {
  /** Default 60 000; any finite wait (longer than a Node timer's 2^31−1 ms too). */
  readonly timeoutMs?: number | undefined
}

export interface Receiver {
  readonly peerId: string
  /** Listen addresses with `/p2p/<peerId>`: give one to the executor to dial. */
  multiaddrs(): string[]
  /** What a capsule names as its receiver: `{ publicKey, peerId }`. */
  readonly receiver: { readonly publicKey: Uint8Array; readonly peerId: string }
  /** The same as text, `0x<public key>@<peer id>` (`sealAndPublish`'s receivers, `pi-node seal --receiver`). */
  readonly id: string
  /**
   * The next verified, opened result (of `runId` when given). Results of other runs that
   * arrive meanwhile are kept for later calls.
   * @throws {ResultTimeoutError} when none arrives in time.
   * @throws {InvalidArgumentError} for a timeout that is negative, NaN or infinite.
   */
  waitForResult(options?: WaitForResultOptions): Promise<ReceivedResult>
  /** Every result as it arrives (verified, opened; of `filter.capsuleId` / `runId` when given), until `stop()`. */
  results(filter?: ResultFilter): AsyncIterable<ReceivedResult>
  /** `error` events: each refused delivery (`ResultRefusedError`, with its reason code). */
  readonly events: EventTarget
  stop(): Promise<void>
}

/**
 * @throws {NetworkUnknownError} | {NetworkInvalidError} | {ChainMismatchError} | {ChainReadError}
 * @throws {InvalidArgumentError} for a key or identity that is not 32 bytes, or both `replayFile` and `replays`.
 * @throws {ResultReplayStoreError} (`REPLAY_STORE`) when the replay file is not one it wrote.
 */
export async function openReceiver(p: OpenReceiverParameters): Promise<Receiver> {
  const network = getNetwork(p.network, { rpcUrl: p.rpcUrl })
  if (!(p.key instanceof Uint8Array) || p.key.length !== 32) {
    throw new InvalidArgumentError('The receiver key is a 32-byte X25519 private key', {
      hint: 'Make one with generateReceiverKey() and keep it: results are sealed to it.',
    })
  }
  if (p.replayFile !== undefined && p.replays !== undefined) {
    throw new InvalidArgumentError('Pass replayFile or replays, not both')
  }
  if (p.replayFile !== undefined && (typeof p.replayFile !== 'string' || p.replayFile === '')) {
    throw new InvalidArgumentError('replayFile is a file path')
  }
  const reads = {
    ...(p.rpcUrls === undefined ? {} : { rpcUrls: p.rpcUrls }),
    ...(p.quorum === undefined ? {} : { quorum: p.quorum }),
    ...(p.confirmations === undefined ? {} : { confirmations: p.confirmations }),
  }
  // Built now: a quorum or depth that cannot be met fails before anything starts.
  const grants = chainResultGrants(network, reads)
  const registry = chainCapsuleRegistry(network, reads)
  const publicKey = x25519PublicKey(p.key)
  const replays =
    p.replays ??
    (p.replayFile === undefined
      ? undefined
      : fileResultReplays({ path: p.replayFile })({ writeJsonAtomic }))
  await checkChainId(network, p.rpcUrls)
  const node = await createDigicapNode({
    listen: p.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: p.bootstrap ?? [],
    ...(p.identity === undefined ? {} : { privateKey: await privateKeyFromSeed(p.identity) }),
  })
  const store = heliaCapsuleStore(node.helia)
  const inbox = createResultReceiver({ privateKey: Uint8Array.from(p.key) })({
    libp2p: node.libp2p,
    store,
    grants,
    // Only capsules whose owner-signed header names this key (registry → CID → header).
    capsules: headerResultCapsules({ registry, store }),
    ...(replays === undefined ? {} : { replays }),
  })
  try {
    await inbox.start()
  } catch (err) {
    await node.stop()
    throw err
  }
  const early: ReceivedResult[] = []
  let stopped = false

  async function waitForResult(options: WaitForResultOptions = {}): Promise<ReceivedResult> {
    const timeoutMs = options.timeoutMs ?? 60_000
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new InvalidArgumentError('timeoutMs is a finite number of milliseconds ≥ 0', {
        details: { timeoutMs: String(timeoutMs) },
      })
    }
    const wanted = options.runId?.toLowerCase()
    const capsule = options.capsuleId?.toLowerCase()
    const matches = (r: ReceivedResult) =>
      (wanted === undefined || r.runId.toLowerCase() === wanted) &&
      (capsule === undefined || r.capsuleId.toLowerCase() === capsule)
    const kept = early.findIndex(matches)
    if (kept >= 0) return early.splice(kept, 1)[0] as ReceivedResult
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const left = deadline - Date.now()
      let r: ReceivedResult
      try {
        if (left <= 0 || stopped) throw new Error('timeout')
        // Node fires a longer timer at once: wait in slices of its longest.
        r = await inbox.next(Math.min(left, MAX_TIMER_MS))
      } catch (cause) {
        if (!stopped && left > MAX_TIMER_MS) continue
        throw new ResultTimeoutError(
          stopped ? 'The receiver stopped before the result arrived' : 'No result arrived in time',
          {
            cause,
            details: {
              timeoutMs,
              ...(wanted === undefined ? {} : { runId: wanted }),
              ...(capsule === undefined ? {} : { capsuleId: capsule }),
            },
            hint: 'Is the executor able to dial this receiver (give it receiver.multiaddrs())?',
          },
        )
      }
      if (matches(r)) return r
      early.push(r)
    }
  }

  async function* results(filter: ResultFilter = {}): AsyncGenerator<ReceivedResult> {
    while (!stopped) {
      try {
        yield await waitForResult({ ...filter, timeoutMs: MAX_TIMER_MS })
      } catch (err) {
        if (stopped) return
        if (!(err instanceof ResultTimeoutError)) throw err
      }
    }
  }

  return {
    peerId: node.peerId,
    multiaddrs: () => node.multiaddrs(),
    receiver: Object.freeze({ publicKey, peerId: node.peerId }),
    id: `${toHex(publicKey)}@${node.peerId}`,
    waitForResult,
    results,
    events: inbox.events,
    async stop() {
      if (stopped) return
      stopped = true
      await inbox.stop()
      await node.stop()
    },
  }
}
