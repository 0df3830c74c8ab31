/**
 * Parked lane workers: a worker that finished a job (its key copy and buffers zeroed, `zeroed`
 * answered) waits here for the next job instead of exiting, and a caller that knows a large
 * payload is coming can start workers ahead of it ({@link LaneWorkerPool.warm}).
 *
 * A worker's start costs ~40–100 ms of its own thread (a V8 isolate, `node:crypto` compiled).
 * `pi-node seal` ran two jobs back to back (the seal's lanes, then the IPFS add's hash lanes)
 * and paid it twice on the path, plus once more while the calling thread sealed alone: with
 * parked workers the second job starts at once and the first finds its worker up.
 *
 * A parked worker's copy of the key and its chunk buffers are zeroed before it is parked; the
 * last chunks' cipher objects (OpenSSL's expanded key inside) are only unreachable until its
 * next collection, as an ended worker's memory was only freed, not wiped. It does not keep the
 * process alive (unref'd) and ends after {@link lanePoolLimits}.idleMs without a job.
 */
import type { Worker } from 'node:worker_threads'

/** How long parked workers wait, and how many are kept. Internal; tests lower them. */
export const lanePoolLimits = {
  /** A parked worker with no job for this long is ended. */
  idleMs: 5000,
  /** Workers kept parked at most (more are ended as their jobs finish). */
  maxParked: 3,
}

/** A worker handed to a job: `online` is false while it still boots. */
export interface PooledWorker {
  worker: Worker
  online: boolean
}

interface Parked extends PooledWorker {
  timer: ReturnType<typeof setTimeout> | undefined
  drop: () => void
}

/**
 * Removes a job's listeners from a worker. Not `removeAllListeners()`: that also removes the
 * `newListener`/`removeListener` hooks with which Node starts and stops a worker's message
 * port, and the worker's answers then never arrive.
 */
export function dropListeners(worker: Worker): void {
  for (const event of ['message', 'messageerror', 'error', 'exit', 'online']) {
    worker.removeAllListeners(event)
  }
}

/** Ends a worker nobody waits for any more: its job's listeners dropped, its last error ignored. */
export function endWorker(worker: Worker): Promise<number> {
  dropListeners(worker)
  worker.on('error', () => {})
  return worker.terminate()
}

/** Workers between jobs. `spawn` makes one (its options are the pool's, fixed at start). */
export class LaneWorkerPool {
  readonly #spawn: () => Worker
  readonly #parked: Parked[] = []

  constructor(spawn: () => Worker) {
    this.#spawn = spawn
  }

  /** Workers parked now (booting ones included). */
  get size(): number {
    return this.#parked.length
  }

  /** A new worker, not parked (throws as `new Worker` does when no thread can be had). */
  spawn(): Worker {
    return this.#spawn()
  }

  /**
   * Up to `count` parked workers, taken out of the pool: the caller now owns their listeners
   * and must {@link park} or end each one. A worker that died a moment ago (its `exit` not yet
   * delivered) can be among them: its job then fails closed (`lane-worker`), as with any worker
   * that dies during a job.
   */
  take(count: number): PooledWorker[] {
    const out: PooledWorker[] = []
    while (out.length < count && this.#parked.length > 0) {
      const p = this.#parked.shift() as Parked
      this.#release(p)
      p.worker.ref()
      out.push({ worker: p.worker, online: p.online })
    }
    return out
  }

  /**
   * Parks a worker whose job is over (its secrets zeroed, or never given: one still booting).
   * Its job's listeners must be removed first. Past {@link lanePoolLimits}.maxParked it is ended.
   */
  park(worker: Worker, online: boolean): void {
    if (this.#parked.length >= lanePoolLimits.maxParked) {
      void endWorker(worker)
      return
    }
    const p: Parked = { worker, online, timer: undefined, drop: () => {} }
    const idle = () => {
      clearTimeout(p.timer)
      p.timer = setTimeout(() => {
        this.#remove(p)
        void worker.terminate()
      }, lanePoolLimits.idleMs)
      p.timer.unref()
    }
    // A parked worker that dies (or fails to boot) is forgotten. The idle clock runs from now,
    // for one still booting too (one that never comes up would otherwise hold its place for
    // good), and starts again when it comes up.
    p.drop = () => this.#remove(p)
    worker.on('error', p.drop)
    worker.on('exit', p.drop)
    if (!online) {
      worker.once('online', () => {
        p.online = true
        idle()
      })
    }
    idle()
    worker.unref()
    this.#parked.push(p)
  }

  /**
   * Starts workers until `count` are parked (up to {@link lanePoolLimits}.maxParked), so a job
   * about to start finds them up. A worker that cannot be made is not an error here: the job
   * makes its own.
   */
  warm(count: number): void {
    const want = Math.min(count, lanePoolLimits.maxParked)
    while (this.#parked.length < want) {
      let worker: Worker
      try {
        worker = this.#spawn()
      } catch {
        return
      }
      this.park(worker, false)
    }
  }

  #release(p: Parked): void {
    clearTimeout(p.timer)
    p.worker.off('error', p.drop)
    p.worker.off('exit', p.drop)
    p.worker.removeAllListeners('online')
  }

  #remove(p: Parked): void {
    const at = this.#parked.indexOf(p)
    if (at < 0) return
    this.#parked.splice(at, 1)
    this.#release(p)
    // an error after this is the dying worker's last word: nobody listens for it any more
    p.worker.on('error', () => {})
  }
}
