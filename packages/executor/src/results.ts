/**
 * Result delivery: the output is HPKE-sealed to each receiver in the header (AAD =
 * `resultAad(runId, capsuleId, grantId)`) and sent on `/digicap/result/1.0.0`, retried until
 * acknowledged. A receiver that cannot be reached gets the sealed bytes put on IPFS instead,
 * and their CID is sent when the receiver connects. The receiver side opens either form.
 */
import {
  DigicapError,
  decodeHpkeSealed,
  encodeHpkeSealed,
  hpkeOpen,
  hpkeSeal,
  type Receiver,
} from '@digicap/capsule-core'
import type { CapsuleStore } from '@digicap/p2p'
import {
  handle,
  MAX_RESULT_FRAME,
  type ResultAck,
  type ResultDelivery,
  request,
  resultAad,
  resultProtocol,
  retryWithBackoff,
} from '@digicap/protocol'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { hexlify } from 'ethers'
import { ExecutorStateError, ResultDeliveryError, ResultInvalidError } from './errors.ts'

/** What happened to one receiver's copy. */
export interface Delivery {
  /** Index in the header's `receivers`. */
  readonly receiver: number
  readonly peerId?: string | undefined
  /** `delivered`: acknowledged inline; `stored`: on IPFS, CID sent when the peer connects;
   * `stored-no-peer`: on IPFS, the header names no peer to tell. */
  readonly status: 'delivered' | 'stored' | 'stored-no-peer'
  readonly resultCid?: string | undefined
  readonly attempts: number
}

export interface ResultIds {
  readonly runId: Uint8Array
  readonly capsuleId: Uint8Array
  readonly grantId: Uint8Array
}

export interface ResultDelivererInit {
  /** Deadline of direct attempts per receiver, ms. Default 5000. */
  readonly directDeadlineMs?: number
  /** First backoff, ms. Default 100. */
  readonly retryBaseMs?: number
  /** Time limit of one exchange, ms. Default 5000. */
  readonly requestTimeoutMs?: number
}

export interface ResultDeliverer {
  deliver(ids: ResultIds, receivers: readonly Receiver[], output: Uint8Array): Promise<Delivery[]>
  /** Deliveries waiting for their receiver to connect. */
  pending(): number
  /** Resolves once no delivery is pending (or after `ms`). */
  drained(ms: number): Promise<boolean>
  stop(): void
}

interface PendingDelivery {
  readonly peer: PeerId
  readonly message: ResultDelivery
}

const INLINE_LIMIT = MAX_RESULT_FRAME - 1024

/**
 * @example
 * ```ts
 * const deliverer = createResultDeliverer()({ libp2p: node.libp2p, store })
 * const deliveries = await deliverer.deliver({ runId, capsuleId, grantId }, header.receivers, output)
 * ```
 */
export function createResultDeliverer(init: ResultDelivererInit = {}) {
  return (components: {
    libp2p: Pick<Libp2p, 'dialProtocol' | 'addEventListener' | 'removeEventListener'>
    store: CapsuleStore
  }): ResultDeliverer => {
    const { libp2p, store } = components
    const pending: PendingDelivery[] = []
    const timeout = init.requestTimeoutMs ?? 5000
    const send = async (peer: PeerId, message: ResultDelivery): Promise<void> => {
      const ack: ResultAck = await request(libp2p, peer, resultProtocol, message, { timeout })
      if (ack.status !== 'ok') {
        throw new ResultDeliveryError('The receiver did not accept the result', {
          details: { status: ack.status },
        })
      }
    }
    let flushing = false
    const flush = async (peer: PeerId): Promise<void> => {
      if (flushing) return
      flushing = true
      try {
        for (const item of [...pending]) {
          if (!item.peer.equals(peer)) continue
          try {
            await send(item.peer, item.message)
            pending.splice(pending.indexOf(item), 1)
          } catch {
            // stays pending until the next connect
          }
        }
      } finally {
        flushing = false
      }
    }
    const onConnect = (e: CustomEvent<PeerId>): void => {
      if (pending.some((p) => p.peer.equals(e.detail))) void flush(e.detail)
    }
    libp2p.addEventListener('peer:connect', onConnect)

    return {
      async deliver(ids, receivers, output) {
        const aad = resultAad(ids)
        const out: Delivery[] = []
        for (const [i, r] of receivers.entries()) {
          const sealed = encodeHpkeSealed(await hpkeSeal(r.publicKey, output, aad))
          const base = { runId: ids.runId, capsuleId: ids.capsuleId, grantId: ids.grantId }
          let attempts = 0
          let peer: PeerId | undefined
          try {
            peer = r.peerId === undefined ? undefined : peerIdFromString(r.peerId)
          } catch {
            peer = undefined
          }
          if (peer && sealed.length <= INLINE_LIMIT) {
            try {
              await retryWithBackoff(
                async () => {
                  attempts++
                  await send(peer, { ...base, hpke: sealed })
                },
                {
                  until: Date.now() + (init.directDeadlineMs ?? 5000),
                  base: init.retryBaseMs ?? 100,
                  max: 1000,
                  retryIf: (err) =>
                    !(err instanceof ResultDeliveryError && err.details.status === 'open-failed'),
                },
              )
              out.push({ receiver: i, peerId: r.peerId, status: 'delivered', attempts })
              continue
            } catch {
              // fall through to IPFS
            }
          }
          let resultCid: string
          try {
            resultCid = await store.put(sealed)
          } catch (cause) {
            throw new ResultDeliveryError('Could not store the sealed result', { cause })
          }
          if (peer) {
            pending.push({ peer, message: { ...base, resultCid } })
            out.push({ receiver: i, peerId: r.peerId, status: 'stored', resultCid, attempts })
          } else {
            out.push({ receiver: i, status: 'stored-no-peer', resultCid, attempts })
          }
        }
        return out
      },
      pending: () => pending.length,
      async drained(ms) {
        const deadline = Date.now() + ms
        while (pending.length > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50))
        }
        return pending.length === 0
      },
      stop() {
        libp2p.removeEventListener('peer:connect', onConnect)
        pending.length = 0
      },
    }
  }
}

/** A result as the receiver opened it. */
export interface ReceivedResult {
  readonly runId: string
  readonly capsuleId: string
  readonly grantId: string
  readonly from: string
  /** `inline` or the IPFS CID it was fetched from. */
  readonly via: string
  readonly output: Uint8Array
}

export interface ResultReceiver {
  start(): Promise<void>
  stop(): Promise<void>
  /** Dispatches `result` (`CustomEvent<ReceivedResult>`) and `error` (`CustomEvent<DigicapError>`). */
  readonly events: EventTarget
  /** The next result (or the first one not yet taken). */
  next(timeoutMs?: number): Promise<ReceivedResult>
}

const MAX_STORED_RESULT = 256 * 1024 * 1024

/**
 * The receiver: handles `/digicap/result/1.0.0`, opens the HPKE with its private key, fetches
 * stored results by CID.
 *
 * @example
 * ```ts
 * const receiver = createResultReceiver({ privateKey })({ libp2p: node.libp2p, store })
 * await receiver.start()
 * const { output } = await receiver.next()
 * ```
 */
export function createResultReceiver(init: { privateKey: Uint8Array }) {
  return (components: {
    libp2p: Pick<Libp2p, 'handle' | 'unhandle'>
    store?: CapsuleStore | undefined
  }): ResultReceiver => {
    const events = new EventTarget()
    const queue: ReceivedResult[] = []
    // A waiter is settled exactly once: by a result, its timeout, or stop().
    const waiters: Array<{ done: (r: ReceivedResult) => void; fail: (e: Error) => void }> = []
    let unhandle: (() => Promise<void>) | undefined
    const emit = (r: ReceivedResult): void => {
      events.dispatchEvent(new CustomEvent('result', { detail: r }))
      const w = waiters.shift()
      if (w) w.done(r)
      else queue.push(r)
    }
    const fetchSealed = async (cid: string): Promise<Uint8Array> => {
      if (!components.store) {
        throw new ResultInvalidError('A stored result arrived but this receiver has no store')
      }
      const parts: Uint8Array[] = []
      let n = 0
      for await (const c of components.store.get(cid, { signal: AbortSignal.timeout(30_000) })) {
        n += c.byteLength
        if (n > MAX_STORED_RESULT) throw new ResultInvalidError('Stored result is too large')
        parts.push(c)
      }
      return new Uint8Array(Buffer.concat(parts, n))
    }
    return {
      events,
      async start() {
        unhandle = await handle(
          components.libp2p,
          resultProtocol,
          async (msg: ResultDelivery, ctx): Promise<ResultAck> => {
            let sealed: Uint8Array
            try {
              sealed = msg.hpke ?? (await fetchSealed(msg.resultCid as string))
            } catch (cause) {
              const err =
                cause instanceof ResultInvalidError
                  ? cause
                  : new ResultInvalidError('Could not fetch the stored result', { cause })
              events.dispatchEvent(new CustomEvent('error', { detail: err }))
              return { runId: msg.runId, status: 'refused' }
            }
            try {
              const output = await hpkeOpen(
                init.privateKey,
                decodeHpkeSealed(sealed),
                resultAad(msg),
              )
              emit({
                runId: hexlify(msg.runId),
                capsuleId: hexlify(msg.capsuleId),
                grantId: hexlify(msg.grantId),
                from: ctx.peer.toString(),
                via: msg.hpke ? 'inline' : (msg.resultCid as string),
                output,
              })
              return { runId: msg.runId, status: 'ok' }
            } catch (cause) {
              const err = new ResultInvalidError('The result does not open with this key', {
                cause,
                details: { code: cause instanceof DigicapError ? cause.code : 'UNKNOWN' },
              })
              events.dispatchEvent(new CustomEvent('error', { detail: err }))
              return { runId: msg.runId, status: 'open-failed' }
            }
          },
          { timeout: 60_000 },
        )
      },
      async stop() {
        await unhandle?.()
        unhandle = undefined
        // Pending next() calls would otherwise keep their timers (and the process) alive.
        for (const w of waiters.splice(0)) {
          w.fail(new ExecutorStateError('The result receiver stopped before a result arrived'))
        }
      },
      next(timeoutMs = 60_000) {
        const r = queue.shift()
        if (r) return Promise.resolve(r)
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
    }
  }
}
