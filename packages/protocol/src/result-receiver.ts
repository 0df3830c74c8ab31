/**
 * The result receiver: handles `/digicap/result/2.0.0` and takes a result only from the
 * executor its grant names, for that grant, capsule and measurement, sealed to its own key,
 * for a capsule whose header names this receiver, once (SPEC §3.4.3). Every refusal is answered with its reason code and reported on the
 * `error` event as a {@link ResultRefusedError}.
 *
 * Memory stays bounded whatever peers send: a stream gate (per-peer and global limits on
 * exchanges in progress, oldest half-read stream evicted first, a read deadline), a per-peer
 * rate limit, caps on queued results (count, bytes, per executor), a bounded replay memory
 * (durable across restarts when a {@link ResultReplayStore} is passed),
 * and a `resultCid` fetched only after the signature and grant checks, and never past the
 * signed `resultSize` (itself capped).
 */
import {
  DigicapError,
  decodeHpkeSealed,
  hpkeOpen,
  toHex,
  x25519PublicKey,
} from '@digicap/capsule-core'
import type { Libp2p } from '@libp2p/interface'
import type { Address } from './eip712.ts'
import { toChecksumAddress } from './eip712.ts'
import {
  ResultHeaderInvalidError,
  ResultInvalidError,
  ResultReceiverStoppedError,
  ResultRefusedError,
} from './errors.ts'
import { MAX_RESULT_FRAME } from './frame.ts'
import { handle } from './handle.ts'
import { resultProtocol } from './protocols.ts'
import { createRateLimiter } from './rate-limit.ts'
import {
  type ResultAck,
  type ResultDelivery,
  type ResultRefusalCode,
  resultAad,
  resultHashOf,
} from './result.ts'
import type { ResultCapsuleSource } from './result-capsules.ts'
import type { ResultDomain } from './result-signature.ts'
import {
  checkResultEnvelope,
  checkResultGrant,
  checkResultReceivers,
  type GrantRecord,
} from './result-verify.ts'
import { createStreamGate, type StreamGateStats } from './stream-gate.ts'

/** Where a receiver learns a grant's executor (the AccessController on chain). */
export interface ResultGrantSource {
  /** The chain id and AccessController: the domain of result signatures. */
  readonly domain: ResultDomain
  /** The grant as stored, or undefined when the chain has none (yet). Throws when the chain cannot be asked. */
  getGrant(grantId: Uint8Array): Promise<GrantRecord | undefined>
}

/**
 * Where the receiver keeps the run and grant ids it has spent, so that a restart does not
 * forget them (`fileResultReplays` of `@digicap/executor` keeps them in a file). Without one,
 * the replay memory lives and dies with the process.
 */
export interface ResultReplayStore {
  /** Ids spent before this start, oldest first. */
  load(): Promise<readonly string[]>
  /** Keeps `ids` durably: resolves once they would survive a restart. */
  add(ids: readonly string[]): Promise<void>
}

/** Where results stored on IPFS are fetched from (a `CapsuleStore` of `@digicap/p2p` fits). */
export interface ResultStore {
  get(cid: string, options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
}

/** A result as the receiver verified and opened it. */
export interface ReceivedResult {
  readonly runId: string
  readonly capsuleId: string
  readonly grantId: string
  /** The executor that signed it: the grant's executor on chain (checksummed). */
  readonly executor: Address
  /** The environment measurement the grant was made for (hex). */
  readonly measurement: string
  /** The run measurement the executor reports (hex; attested, not checked here). */
  readonly runMeasurement: string
  /** The libp2p peer that delivered it. */
  readonly from: string
  /** `inline` or the IPFS CID it was fetched from. */
  readonly via: string
  readonly output: Uint8Array
}

export interface ResultReceiverInit {
  /** The receiver's X25519 private key. */
  readonly privateKey: Uint8Array
  /** Largest sealed result taken, bytes (inline: also bounded by the frame). Default 64 MiB. */
  readonly maxResultBytes?: number
  /** Bounded wait for a grant to appear on chain (fast-path audit record), ms. Default 5000. */
  readonly grantWaitMs?: number
  /** Poll interval of that wait, ms. Default 250. */
  readonly grantPollMs?: number
  /** Exchanges of one peer in progress at once. Default 2. */
  readonly maxPerPeer?: number
  /** Exchanges in progress at once, all peers. Default 8. */
  readonly maxInFlight?: number
  /** Time for a request frame to arrive, ms. Default 10 000. */
  readonly readTimeoutMs?: number
  /** Results opened but not yet taken with `next()`. Default 64. */
  readonly maxQueued?: number
  /** Bytes of those results. Default 64 MiB. */
  readonly maxQueuedBytes?: number
  /** Of those, from one executor. Default 16. */
  readonly maxQueuedPerExecutor?: number
  /** Per-peer token bucket: burst and refill per second. Default 20 and 5. */
  readonly rate?: { capacity: number; refillPerSecond: number }
  /** Run and grant ids remembered against replays (oldest forgotten first). Default 100 000. */
  readonly replayMemory?: number
  /** Largest frame accepted, bytes. Default 4 MiB. */
  readonly maxFrameBytes?: number
}

export interface ResultReceiverComponents {
  readonly libp2p: Pick<Libp2p, 'handle' | 'unhandle'>
  /** Where results stored on IPFS are fetched from. */
  readonly store?: ResultStore | undefined
  /** The chain's grants (who may deliver what). */
  readonly grants: ResultGrantSource
  /**
   * The receivers each capsule's owner-signed header names (check 11, `not-a-receiver`):
   * {@link headerResultCapsules} reads them from the registry and the header's CID.
   */
  readonly capsules: ResultCapsuleSource
  /**
   * Durable replay memory: loaded at `start()`, and each accepted result's ids are kept there
   * before it is acknowledged (a result whose ids cannot be kept is refused `busy`).
   */
  readonly replays?: ResultReplayStore | undefined
}

/** Load counters, for tests and metrics. */
export interface ResultReceiverStats {
  readonly streams: StreamGateStats
  readonly queued: number
  readonly queuedBytes: number
  readonly peakQueuedBytes: number
  readonly accepted: number
  readonly refused: Readonly<Partial<Record<ResultRefusalCode, number>>>
}

export interface ResultReceiver {
  start(): Promise<void>
  stop(): Promise<void>
  /**
   * Dispatches `result` (`CustomEvent<ReceivedResult>`) and `error`
   * (`CustomEvent<DigicapError>`: a {@link ResultRefusedError} for each refusal).
   */
  readonly events: EventTarget
  /** The next result (or the first one not yet taken). */
  next(timeoutMs?: number): Promise<ReceivedResult>
  stats(): ResultReceiverStats
}

const RETRY_MS: Partial<Record<ResultRefusalCode, number>> = {
  busy: 1000,
  'unknown-grant': 1000,
  'fetch-failed': 2000,
}

/** A bounded set: the oldest entry goes first. */
function boundedSet(capacity: number) {
  const set = new Set<string>()
  return {
    has: (k: string) => set.has(k),
    delete: (k: string) => set.delete(k),
    add(k: string) {
      set.add(k)
      if (set.size > capacity) set.delete(set.values().next().value as string)
    },
  }
}

/**
 * @example
 * ```ts
 * const grants = ethersResultGrants({ chainId, accessController, runner: provider })
 * const capsules = headerResultCapsules({ registry, store })
 * const receiver = createResultReceiver({ privateKey })({ libp2p: node.libp2p, store, grants, capsules })
 * await receiver.start()
 * const { output, executor } = await receiver.next()
 * ```
 */
export function createResultReceiver(init: ResultReceiverInit) {
  return (components: ResultReceiverComponents): ResultReceiver => {
    const { grants } = components
    const receiverKey = x25519PublicKey(init.privateKey)
    const maxResultBytes = init.maxResultBytes ?? 64 * 1024 * 1024
    const grantWaitMs = init.grantWaitMs ?? 5000
    const grantPollMs = init.grantPollMs ?? 250
    const maxQueued = init.maxQueued ?? 64
    const maxQueuedBytes = init.maxQueuedBytes ?? 64 * 1024 * 1024
    const maxQueuedPerExecutor = init.maxQueuedPerExecutor ?? 16
    const gate = createStreamGate({
      maxPerPeer: init.maxPerPeer ?? 2,
      maxTotal: init.maxInFlight ?? 8,
    })
    const limiter = createRateLimiter({
      capacity: init.rate?.capacity ?? 20,
      refillPerSecond: init.rate?.refillPerSecond ?? 5,
    })()
    const accepted = boundedSet(init.replayMemory ?? 100_000)
    const claimed = new Set<string>()
    const events = new EventTarget()
    const queue: ReceivedResult[] = []
    const perExecutor = new Map<string, number>()
    let queuedBytes = 0
    // Bytes of results being fetched or opened right now (counted against maxQueuedBytes).
    let reservedBytes = 0
    let peakQueuedBytes = 0
    let acceptedCount = 0
    const refusedCount: Partial<Record<ResultRefusalCode, number>> = {}
    // A waiter is settled exactly once: by a result, its timeout, or stop().
    const waiters: Array<{ done: (r: ReceivedResult) => void; fail: (e: Error) => void }> = []
    let unhandle: (() => Promise<void>) | undefined

    const take = (r: ReceivedResult): ReceivedResult => {
      queuedBytes -= r.output.byteLength
      const n = (perExecutor.get(r.executor) ?? 1) - 1
      if (n <= 0) perExecutor.delete(r.executor)
      else perExecutor.set(r.executor, n)
      return r
    }
    const emit = (r: ReceivedResult): void => {
      events.dispatchEvent(new CustomEvent('result', { detail: r }))
      const w = waiters.shift()
      if (w) {
        w.done(r)
        return
      }
      queue.push(r)
      queuedBytes += r.output.byteLength
      peakQueuedBytes = Math.max(peakQueuedBytes, queuedBytes)
      perExecutor.set(r.executor, (perExecutor.get(r.executor) ?? 0) + 1)
    }
    const queueFull = (extraBytes: number): boolean =>
      waiters.length === 0 &&
      (queue.length >= maxQueued || queuedBytes + reservedBytes + extraBytes > maxQueuedBytes)

    const refuse = (
      msg: ResultDelivery,
      from: string,
      reasonCode: ResultRefusalCode,
      extra: { executor?: string | undefined; retryAfterMs?: number; cause?: unknown } = {},
    ): ResultAck => {
      refusedCount[reasonCode] = (refusedCount[reasonCode] ?? 0) + 1
      const err = new ResultRefusedError(reasonCode, {
        details: {
          runId: toHex(msg.runId),
          grantId: toHex(msg.grantId),
          from,
          ...(extra.executor === undefined ? {} : { executor: extra.executor }),
        },
        ...(extra.cause === undefined ? {} : { cause: extra.cause }),
      })
      events.dispatchEvent(new CustomEvent('error', { detail: err }))
      const retryAfterMs = extra.retryAfterMs ?? RETRY_MS[reasonCode]
      return retryAfterMs === undefined
        ? { runId: msg.runId, status: 'refused', reasonCode }
        : { runId: msg.runId, status: 'refused', reasonCode, retryAfterMs }
    }

    /** Polls the chain until the grant shows up, `grantWaitMs` passes, or the exchange ends. */
    const lookUpGrant = async (
      grantId: Uint8Array,
      signal: AbortSignal,
    ): Promise<GrantRecord | undefined> => {
      const deadline = Date.now() + grantWaitMs
      for (;;) {
        const g = await grants.getGrant(grantId)
        if (g !== undefined || Date.now() + grantPollMs > deadline || signal.aborted) return g
        await new Promise((r) => setTimeout(r, grantPollMs))
      }
    }

    const fetchSealed = async (
      cid: string,
      size: number,
      signal: AbortSignal,
    ): Promise<Uint8Array> => {
      if (!components.store) {
        throw new ResultInvalidError('A stored result arrived but this receiver has no store')
      }
      const out = new Uint8Array(size)
      let n = 0
      const ac = new AbortController()
      const both = AbortSignal.any([signal, ac.signal])
      for await (const c of components.store.get(cid, { signal: both })) {
        if (n + c.byteLength > size) {
          ac.abort()
          throw new ResultInvalidError('Stored result is longer than its signed size', {
            details: { resultSize: size },
          })
        }
        out.set(c, n)
        n += c.byteLength
      }
      if (n !== size) {
        throw new ResultInvalidError('Stored result is shorter than its signed size', {
          details: { resultSize: size, got: n },
        })
      }
      return out
    }

    const onDelivery = async (
      msg: ResultDelivery,
      from: string,
      signal: AbortSignal,
    ): Promise<ResultAck> => {
      const rate = limiter.take(from)
      if (!rate.allowed) {
        return refuse(msg, from, 'rate-limited', { retryAfterMs: rate.retryAfterMs })
      }
      if (queueFull(msg.hpke?.byteLength ?? msg.resultSize)) return refuse(msg, from, 'busy')
      const runKey = `r${toHex(msg.runId)}`
      const grantKey = `g${toHex(msg.grantId)}`
      const first = checkResultEnvelope(msg, {
        domain: grants.domain,
        receiverKey,
        maxResultSize: maxResultBytes,
        seen: accepted.has(runKey) || accepted.has(grantKey),
      })
      if (!first.ok) return refuse(msg, from, first.reasonCode, { executor: first.executor })
      const executor = first.executor
      let grant: GrantRecord | undefined
      try {
        grant = await lookUpGrant(msg.grantId, signal)
      } catch (cause) {
        return refuse(msg, from, 'busy', { executor, cause })
      }
      const second = checkResultGrant(msg, grant, grants.domain)
      if (!second.ok) return refuse(msg, from, second.reasonCode, { executor })
      // The capsule's header must name this receiver: a grant for any capsule is not enough.
      // A header read and found not to be the capsule's names nobody (final); one that cannot
      // be read now is busy (retried).
      let named: readonly Uint8Array[] | undefined
      try {
        named = await components.capsules.receiversOf(msg.capsuleId, signal)
      } catch (cause) {
        if (cause instanceof ResultHeaderInvalidError) {
          return refuse(msg, from, 'not-a-receiver', { executor, cause })
        }
        return refuse(msg, from, 'busy', { executor, cause })
      }
      const third = checkResultReceivers(msg, named)
      if (!third.ok) return refuse(msg, from, third.reasonCode, { executor })
      // Accepted while this one waited for its grant (a fast-path grant is polled for): the
      // grant has its result, so this is a second one, not a retry in flight.
      if (accepted.has(runKey) || accepted.has(grantKey))
        return refuse(msg, from, 'replayed', { executor })
      // Only the grant's own executor gets this far: a clash is its own retry in flight.
      if (claimed.has(runKey) || claimed.has(grantKey))
        return refuse(msg, from, 'busy', { executor })
      if ((perExecutor.get(executor) ?? 0) >= maxQueuedPerExecutor) {
        return refuse(msg, from, 'busy', { executor })
      }
      if (queueFull(msg.resultSize)) return refuse(msg, from, 'busy', { executor })
      claimed.add(runKey)
      claimed.add(grantKey)
      reservedBytes += msg.resultSize
      let released = false
      try {
        let sealed: Uint8Array
        if (msg.hpke !== undefined) {
          sealed = msg.hpke
        } else {
          try {
            sealed = await fetchSealed(msg.resultCid, msg.resultSize, signal)
          } catch (cause) {
            return refuse(msg, from, 'fetch-failed', { executor, cause })
          }
          if (!equal(resultHashOf(sealed), msg.resultHash)) {
            return refuse(msg, from, 'hash-mismatch', { executor })
          }
        }
        let output: Uint8Array
        try {
          output = await hpkeOpen(init.privateKey, decodeHpkeSealed(sealed), resultAad(msg))
        } catch (cause) {
          return refuse(msg, from, 'open-failed', {
            executor,
            cause: cause instanceof DigicapError ? cause : undefined,
          })
        }
        reservedBytes -= msg.resultSize
        released = true
        if (queueFull(output.byteLength)) return refuse(msg, from, 'busy', { executor })
        // A run is accepted once: its run id and its grant id are spent, across restarts too
        // when there is a store (kept there before the ack, so an ack implies a durable spend).
        accepted.add(runKey)
        accepted.add(grantKey)
        if (components.replays !== undefined) {
          try {
            await components.replays.add([runKey, grantKey])
          } catch (cause) {
            accepted.delete(runKey)
            accepted.delete(grantKey)
            return refuse(msg, from, 'busy', { executor, cause })
          }
        }
        acceptedCount++
        emit({
          runId: toHex(msg.runId),
          capsuleId: toHex(msg.capsuleId),
          grantId: toHex(msg.grantId),
          executor: toChecksumAddress(msg.executor),
          measurement: toHex(msg.measurement),
          runMeasurement: toHex(msg.runMeasurement),
          from,
          via: msg.hpke !== undefined ? 'inline' : msg.resultCid,
          output,
        })
        return { runId: msg.runId, status: 'ok' }
      } finally {
        if (!released) reservedBytes -= msg.resultSize
        claimed.delete(runKey)
        claimed.delete(grantKey)
      }
    }

    return {
      events,
      async start() {
        if (components.replays !== undefined) {
          for (const id of await components.replays.load()) accepted.add(id)
        }
        unhandle = await handle(
          components.libp2p,
          resultProtocol,
          (msg, ctx) => onDelivery(msg, ctx.peer.toString(), ctx.signal),
          {
            timeout: 60_000,
            readTimeout: init.readTimeoutMs ?? 10_000,
            maxSize: init.maxFrameBytes ?? MAX_RESULT_FRAME,
            gate,
          },
        )
      },
      async stop() {
        await unhandle?.()
        unhandle = undefined
        // Pending next() calls would otherwise keep their timers (and the process) alive.
        for (const w of waiters.splice(0)) {
          w.fail(
            new ResultReceiverStoppedError('The result receiver stopped before a result arrived'),
          )
        }
      },
      next(timeoutMs = 60_000) {
        const r = queue.shift()
        if (r) return Promise.resolve(take(r))
        return new Promise((resolve, reject) => {
          const waiter = {
            done: (x: ReceivedResult): void => {
              clearTimeout(t)
              resolve(x)
            },
            fail: (e: Error): void => {
              clearTimeout(t)
              reject(e)
            },
          }
          const t = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1)
            reject(new ResultInvalidError('No result arrived in time', { details: { timeoutMs } }))
          }, timeoutMs)
          waiters.push(waiter)
        })
      },
      stats: () => ({
        streams: gate.stats(),
        queued: queue.length,
        queuedBytes,
        peakQueuedBytes,
        accepted: acceptedCount,
        refused: { ...refusedCount },
      }),
    }
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
