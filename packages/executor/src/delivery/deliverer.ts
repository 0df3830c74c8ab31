/**
 * Result delivery (executor side): the output is HPKE-sealed to each receiver in the header
 * (AAD = `resultAad(runId, capsuleId, grantId)`), signed by the executor's key (EIP-712
 * `Result`, SPEC §3.4.2) and sent on `/digicap/result/2.0.0`, retried while the receiver
 * answers a retryable refusal (e.g. `unknown-grant` while a fast-path audit record is not
 * mined yet) or cannot be reached. A receiver that cannot be reached gets the sealed bytes put
 * on IPFS instead, and the signed delivery with their CID is sent when it connects. A final
 * refusal (`wrong-executor`, `replayed`, …) is reported, not retried.
 */
import {
  type DigicapSigner,
  encodeHpkeSealed,
  hpkeSeal,
  type Receiver,
  toHex,
} from '@digicap/capsule-core'
import type { CapsuleStore } from '@digicap/p2p'
import {
  addressToBytes,
  isRetryableResultRefusal,
  MAX_RESULT_FRAME,
  type ResultAck,
  type ResultDelivery,
  type ResultDomain,
  type ResultRefusalCode,
  ResultRefusedError,
  request,
  resultAad,
  resultHashOf,
  resultProtocol,
  retryWithBackoff,
  type SignedResultFields,
  signResultWith,
  type UnknownResultRefusalCode,
} from '@digicap/protocol'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ResultDeliveryError } from '../errors.ts'
import type { PendingDeliveryStore } from './pending-file.ts'

/** What happened to one receiver's copy. */
export interface Delivery {
  /** Index in the header's `receivers`. */
  readonly receiver: number
  readonly peerId?: string | undefined
  /** `delivered`: acknowledged; `stored`: on IPFS, CID sent when the peer connects;
   * `stored-no-peer`: on IPFS, the header names no peer to tell; `refused`: the receiver
   * refused for good (`reasonCode`). */
  readonly status: 'delivered' | 'stored' | 'stored-no-peer' | 'refused'
  readonly resultCid?: string | undefined
  /** A code of the protocol SPEC §3.4.3, or a newer receiver's final code as it sent it. */
  readonly reasonCode?: ResultRefusalCode | UnknownResultRefusalCode | undefined
  readonly attempts: number
}

/** The facts of a run that its result delivery is bound to (all 32 bytes). */
export interface ResultIds {
  readonly runId: Uint8Array
  readonly capsuleId: Uint8Array
  readonly grantId: Uint8Array
  /** The environment measurement of the access request (bound into the grant id). */
  readonly measurement: Uint8Array
  /** SHA-256(runtime ‖ code ‖ payload) of the run. */
  readonly runMeasurement: Uint8Array
}

export interface ResultDelivererInit {
  /** Deadline of direct attempts per receiver, ms. Default 15 000. */
  readonly directDeadlineMs?: number
  /** First backoff, ms. Default 100. */
  readonly retryBaseMs?: number
  /** Time limit of one exchange, ms. Default 30 000 (the receiver may wait for the chain). */
  readonly requestTimeoutMs?: number
  /**
   * First wait before a pending result a connected receiver refused for now (or a failed
   * exchange) is sent again, ms; it doubles up to 30 s, and is at least the receiver's
   * `retryAfterMs`. Default 1 000.
   */
  readonly flushRetryBaseMs?: number
  /**
   * How long a stored copy its receiver keeps refusing for now (`unknown-grant`, `fetch-failed`,
   * `busy`) is tried, ms; then it is dropped with its record. Default 7 days.
   */
  readonly pendingMaxAgeMs?: number
}

export interface ResultDelivererComponents {
  readonly libp2p: Pick<
    Libp2p,
    'dialProtocol' | 'addEventListener' | 'removeEventListener' | 'getConnections'
  >
  readonly store: CapsuleStore
  /** The chain and AccessController of the grants (the EIP-712 domain of the signature). */
  readonly domain: ResultDomain
  /** The executor's account (the grant's executor): signs each delivery, wherever its key is. */
  readonly signer: DigicapSigner
  /**
   * Keeps pending copies across restarts (`filePendingDeliveries`): a copy is reported
   * `stored` once it is kept there. Without it they live in this process only.
   */
  readonly pending?: PendingDeliveryStore | undefined
}

export interface ResultDeliverer {
  /**
   * Takes back the pending copies the store kept (an earlier process's, or one killed), to send
   * each when its receiver connects (at once to one connected now). Returns how many, and the
   * store's files that did not read as a record (skipped, never sent).
   */
  restore(): Promise<{ restored: number; skipped: string[] }>
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
  /** When it was stored (ms since the epoch): a copy still refused after `pendingMaxAgeMs` goes. */
  readonly since: number
}

const INLINE_LIMIT = MAX_RESULT_FRAME - 1024
/** Receivers a delivery tries at once. */
const DELIVERY_LANES = 8

/** One receiver's copy of one run. */
const fileKey = (m: ResultDelivery): string => `${toHex(m.runId)}-${toHex(m.receiverKey)}`

function isRetryable(err: unknown): boolean {
  return !(err instanceof ResultRefusedError) || err.details.retryable === true
}

/**
 * @example
 * ```ts
 * const deliverer = createResultDeliverer()({ libp2p, store, domain, signer })
 * const deliveries = await deliverer.deliver(ids, header.receivers, output)
 * ```
 */
export function createResultDeliverer(init: ResultDelivererInit = {}) {
  return (components: ResultDelivererComponents): ResultDeliverer => {
    const { libp2p, store, domain } = components
    const { signer } = components
    const executor = addressToBytes(signer.address)
    const pending: PendingDelivery[] = []
    const kept = components.pending
    /** Drops a copy: delivered, or refused for good. Its record goes too. */
    const done = (item: PendingDelivery): void => {
      const i = pending.indexOf(item)
      if (i >= 0) pending.splice(i, 1)
      void kept?.remove(item.message).catch(() => {})
    }
    const timeout = init.requestTimeoutMs ?? 30_000
    const send = async (peer: PeerId, message: ResultDelivery): Promise<void> => {
      const ack: ResultAck = await request(libp2p, peer, resultProtocol, message, { timeout })
      if (ack.status === 'refused') {
        throw new ResultRefusedError(ack.reasonCode, {
          details: {
            // A code this executor does not know (a newer receiver's) is final unless the
            // receiver said when to try again (protocol SPEC §3.4.5).
            retryable: isRetryableResultRefusal(ack),
            ...(ack.retryAfterMs === undefined ? {} : { retryAfterMs: ack.retryAfterMs }),
          },
        })
      }
    }
    const sign = (fields: SignedResultFields): Promise<Uint8Array> =>
      signResultWith(signer, fields, domain)
    // Each peer is flushed on its own: one receiver that answers slowly (or never) holds up
    // only its own results. A connect during its flush asks for another pass; what a retryable
    // refusal or a transport error left pending is tried again while the peer stays connected,
    // with backoff (at least the receiver's retryAfterMs), not only at its next connect.
    const flushing = new Set<string>()
    const again = new Set<string>()
    const timers = new Map<string, ReturnType<typeof setTimeout>>()
    const backoff = new Map<string, number>()
    const retryBase = init.flushRetryBaseMs ?? 1000
    const maxAge = init.pendingMaxAgeMs ?? 7 * 24 * 3600_000
    let stopped = false
    const flush = async (peer: PeerId): Promise<void> => {
      const key = peer.toString()
      if (flushing.has(key)) {
        again.add(key)
        return
      }
      flushing.add(key)
      let hint = 0
      try {
        for (const item of [...pending]) {
          if (stopped) return
          if (!item.peer.equals(peer)) continue
          try {
            await send(item.peer, item.message)
            done(item)
          } catch (err) {
            // A final refusal ends it, and so does a refusal for now older than maxAge (a grant
            // that never came, blocks gone: retried every 30 s for ever otherwise, its file
            // never freed). Anything else stays pending, tried again below.
            if (!isRetryable(err) || Date.now() - item.since > maxAge) done(item)
            const after = findRefusal(err)?.details.retryAfterMs
            if (typeof after === 'number') hint = Math.max(hint, after)
          }
        }
      } finally {
        flushing.delete(key)
      }
      const reconnected = again.delete(key)
      if (stopped || !pending.some((p) => p.peer.equals(peer))) {
        backoff.delete(key)
        return
      }
      const delay = Math.min(30_000, Math.max(retryBase, 2 * (backoff.get(key) ?? retryBase / 2)))
      backoff.set(key, delay)
      clearTimeout(timers.get(key))
      const timer = setTimeout(
        () => {
          timers.delete(key)
          if (!stopped && libp2p.getConnections(peer).length > 0) void flush(peer)
        },
        reconnected ? 0 : Math.max(delay, hint),
      )
      timer.unref?.()
      timers.set(key, timer)
    }
    const onConnect = (e: CustomEvent<PeerId>): void => {
      if (pending.some((p) => p.peer.equals(e.detail))) void flush(e.detail)
    }
    libp2p.addEventListener('peer:connect', onConnect)

    return {
      async restore() {
        if (kept === undefined) return { restored: 0, skipped: [] }
        const { records, skipped } = await kept.load()
        let restored = 0
        for (const r of records) {
          let peer: PeerId
          try {
            peer = peerIdFromString(r.peer)
          } catch {
            skipped.push(r.peer)
            continue
          }
          // already here (restore called twice): one copy
          const copy = fileKey(r.message)
          if (pending.some((p) => fileKey(p.message) === copy)) continue
          pending.push({ peer, message: r.message, since: r.since ?? Date.now() })
          restored++
        }
        for (const peer of new Set(pending.map((p) => p.peer.toString()))) {
          const id = peerIdFromString(peer)
          if (libp2p.getConnections(id).length > 0) void flush(id)
        }
        return { restored, skipped }
      },
      async deliver(ids, receivers, output) {
        const aad = resultAad(ids)
        const one = async (i: number, r: Receiver): Promise<Delivery> => {
          const sealed = encodeHpkeSealed(await hpkeSeal(r.publicKey, output, aad))
          const fields: SignedResultFields = {
            runId: ids.runId,
            grantId: ids.grantId,
            capsuleId: ids.capsuleId,
            executor,
            receiverKey: r.publicKey,
            measurement: ids.measurement,
            runMeasurement: ids.runMeasurement,
            resultHash: resultHashOf(sealed),
            resultSize: sealed.length,
          }
          const signed = { ...fields, signature: await sign(fields) }
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
                  await send(peer, { ...signed, hpke: sealed })
                },
                {
                  until: Date.now() + (init.directDeadlineMs ?? 15_000),
                  base: init.retryBaseMs ?? 100,
                  max: 1000,
                  retryIf: isRetryable,
                },
              )
              return { receiver: i, peerId: r.peerId, status: 'delivered', attempts }
            } catch (err) {
              const final = findRefusal(err)
              if (final !== undefined && !isRetryable(final)) {
                return {
                  receiver: i,
                  peerId: r.peerId,
                  status: 'refused',
                  reasonCode: final.reasonCode,
                  attempts,
                }
              }
              // unreachable or still refusing for now: fall through to IPFS
            }
          }
          let resultCid: string
          try {
            resultCid = await store.put(sealed)
          } catch (cause) {
            throw new ResultDeliveryError('Could not store the sealed result', { cause })
          }
          if (peer) {
            const item = { peer, message: { ...signed, resultCid }, since: Date.now() }
            // Kept before it is reported `stored`: a crash from here on loses nothing. A store
            // that is full or failing leaves the copy in this process only.
            await kept?.put({ peer: peer.toString(), message: item.message }).catch(() => false)
            pending.push(item)
            // a receiver still connected (it refused for now past the direct deadline) gets the
            // copy from the retry loop, not only at its next connect (review)
            if (libp2p.getConnections(peer).length > 0) void flush(peer)
            return { receiver: i, peerId: r.peerId, status: 'stored', resultCid, attempts }
          }
          return { receiver: i, status: 'stored-no-peer', resultCid, attempts }
        }
        // Receivers are tried side by side, a few at a time: one after the other, each unreachable
        // one cost its whole direct deadline, 15 s (32 receivers: 8 minutes; review).
        const out: Delivery[] = new Array(receivers.length)
        let next = 0
        const lane = async () => {
          for (let i = next++; i < receivers.length; i = next++)
            out[i] = await one(i, receivers[i] as Receiver)
        }
        const lanes = Math.min(DELIVERY_LANES, receivers.length)
        await Promise.all(Array.from({ length: lanes }, lane))
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
        stopped = true
        libp2p.removeEventListener('peer:connect', onConnect)
        for (const t of timers.values()) clearTimeout(t)
        timers.clear()
        pending.length = 0
      },
    }
  }
}

/** The refusal inside a retry wrapper's error chain, if any. */
function findRefusal(err: unknown): ResultRefusedError | undefined {
  let e: unknown = err
  for (let i = 0; i < 5 && e !== undefined && e !== null; i++) {
    if (e instanceof ResultRefusedError) return e
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}
