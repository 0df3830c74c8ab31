/**
 * The open's hashing of the payload's data range (ADR 0035), on the open's thread or, for
 * large payloads on a machine with a second core, on a worker thread (ADR 0049): the open's
 * thread then only decrypts and writes, and the SHA-256 the run measurement needs runs beside
 * it. Either way each chunk is handed over once written, hashed, then zeroed and freed; the
 * worker holds at most a few chunks, so memory stays flat in the payload's size.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { sandboxWorkerUrl } from '../../sandbox/worker-host.ts'
import { DataRangeHasher, type HashedDataRange, release } from './data-range-hasher.ts'
import type { HashWorkerAnswer, HashWorkerRequest, HashWorkerStart } from './protocol.ts'

export interface PlaintextHasher {
  /** Where the hashing runs. */
  readonly where: 'thread' | 'worker'
  /**
   * Takes written plaintext chunks, in order: hashes them, then zeroes and frees them (the
   * caller must not use them again). Waits while the worker is too far behind.
   */
  take(chunks: readonly Uint8Array[]): Promise<void>
  /** The data range and its digest, once every chunk was taken. */
  finish(): Promise<HashedDataRange>
  /** After a failure: every chunk taken is zeroed, and the worker stops. Never throws. */
  abort(): Promise<void>
}

/** Payloads from this size hash on a worker (the worker's start costs tens of ms). */
export const HASH_WORKER_MIN_BYTES = 32 * 1024 * 1024
/** `chunks` messages the worker may have queued before `take` waits (memory bound). */
const MAX_IN_FLIGHT = 4

/** A worker for payloads of `HASH_WORKER_MIN_BYTES` or more on two or more cores. */
export function plaintextHasher(
  bundle: boolean,
  total: number,
  where: 'thread' | 'worker' | 'auto' = 'auto',
): PlaintextHasher {
  const worker =
    where === 'worker' ||
    (where === 'auto' && total >= HASH_WORKER_MIN_BYTES && availableParallelism() >= 2)
  return worker ? workerHasher({ bundle, total }) : threadHasher(bundle, total)
}

function threadHasher(bundle: boolean, total: number): PlaintextHasher {
  const hasher = new DataRangeHasher(bundle, total)
  return {
    where: 'thread',
    async take(chunks) {
      for (const c of chunks) hasher.push(c)
      release(chunks)
    },
    async finish() {
      return hasher.digest()
    },
    async abort() {
      hasher.digest()
    },
  }
}

/** A chunk the worker may own: the whole of its buffer (a cipher output), else a copy. */
function transferable(c: Uint8Array): Uint8Array {
  if (c.byteOffset === 0 && c.byteLength === c.buffer.byteLength) return c
  const copy = new Uint8Array(c)
  c.fill(0)
  return copy
}

function workerHasher(start: HashWorkerStart): PlaintextHasher {
  const worker = new Worker(sandboxWorkerUrl('hash', import.meta.url), { workerData: start })
  let inFlight = 0
  let failure: Error | undefined
  let wake: (() => void) | undefined
  let gotDigest: (d: HashedDataRange) => void = () => {}
  const digest = new Promise<HashedDataRange>((resolve, reject) => {
    gotDigest = resolve
    const fail = (err: Error) => {
      failure ??= err
      reject(failure)
      wake?.()
    }
    worker.on('error', fail)
    worker.on('exit', () => fail(new Error('The hash worker stopped before its digest')))
  })
  digest.catch(() => {}) // read by finish/abort
  worker.on('message', (a: HashWorkerAnswer) => {
    if (a.type === 'hashed') {
      inFlight--
      wake?.()
    } else gotDigest({ range: a.range, sha256: a.sha256 })
  })
  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    worker.postMessage({ type: 'end' } satisfies HashWorkerRequest)
  }
  return {
    where: 'worker',
    async take(chunks) {
      if (failure) {
        release(chunks)
        throw failure
      }
      const send = chunks.map(transferable)
      worker.postMessage({ type: 'chunks', chunks: send } satisfies HashWorkerRequest, [
        ...send.map((c) => c.buffer as ArrayBuffer),
      ])
      inFlight++
      while (inFlight > MAX_IN_FLIGHT && !failure) {
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        wake = undefined
      }
      if (failure) throw failure
    },
    async finish() {
      end()
      try {
        return await digest
      } finally {
        await worker.terminate()
      }
    },
    async abort() {
      end()
      // Answered only once every chunk before it is zero; bounded, then the worker goes.
      const timer = new Promise((resolve) => setTimeout(resolve, 5000).unref())
      await Promise.race([digest.catch(() => {}), timer])
      await worker.terminate()
    },
  }
}
