/**
 * Parallel chunk lanes for the file helpers: worker threads that each read, hash, encrypt or
 * decrypt whole chunks at their own offsets of the input and output files, so every core
 * works on the payload at once.
 *
 * Chunks are independent (the nonce follows from the index, the AAD is the header hash) and
 * the plaintext commitment is a keyed combination of per-chunk SHA-256 digests (SPEC.md §4.3),
 * so a chunk needs nothing from its neighbours. The main thread only hands out chunk
 * indices, in order and at most a small window ahead of the oldest unfinished one, and feeds
 * the returned digests to the commitment in chunk order: memory stays constant whatever the
 * file size.
 *
 * The workers share the process's file descriptors (positional `pread`/`pwrite`), so no
 * chunk is ever copied between threads.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto'
import { readSync, statSync, writeSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { CapsuleIntegrityError } from '../errors.ts'
import { chunkNonce } from '../payload.ts'
import { dropListeners, endWorker, LaneWorkerPool, type PooledWorker } from './lane-pool.ts'
import { lanesFor, PARALLEL_FILE_MIN_BYTES, type WarmFileLanesOptions } from './threads.ts'

/** What {@link laneChunk} needs from Node, passed in so the function stays self-contained. */
interface LaneIo {
  createCipheriv: typeof import('node:crypto').createCipheriv
  createDecipheriv: typeof import('node:crypto').createDecipheriv
  createHash: typeof import('node:crypto').createHash
  readSync: typeof import('node:fs').readSync
  writeSync: typeof import('node:fs').writeSync
}

/** One lane's fixed parameters and its reused chunk buffer. */
interface LaneState {
  op: LaneOp
  /** Hash each chunk's plaintext (version 1's commitment leaves, the payload digest's). */
  hash: boolean
  /** Hash each chunk's ciphertext body (version 2's commitment leaves, its IPFS leaves). */
  hashCipher: boolean
  /**
   * Version 2 (seal, open): the tags sit in a table, chunk i's at `tagBase + 16 × i`, and the
   * bodies follow one another with no tag between them. -1: version 1, each tag after its body.
   */
  tagBase: number
  /** Seal: return each chunk's tag instead of writing it (the caller corrects and writes it). */
  deferTag: boolean
  inFd: number
  outFd: number
  key: Uint8Array
  aad: Uint8Array
  chunkSize: number
  plaintextSize: number
  chunkCount: number
  inBase: number
  outBase: number
  /** Input chunk (and tag), reused. */
  buf: Uint8Array
  /** Open: the chunk's plaintext, reused; written only once the tag verifies. */
  plain: Uint8Array
}

/**
 * Processes chunk `i` of a lane job. Self-contained on purpose (no imports, no outer names):
 * the main thread calls it directly and the workers run its source text, so both run the
 * very same code, from the sources and from any bundle.
 */
function laneChunk(io: LaneIo, s: LaneState, i: number, nonce: Uint8Array): LaneAnswer {
  const TAG = 16
  const len =
    i < s.chunkCount - 1 ? s.chunkSize : s.plaintextSize - (s.chunkCount - 1) * s.chunkSize
  const inline = s.tagBase < 0
  const inStride = s.op === 'open' && inline ? s.chunkSize + TAG : s.chunkSize
  const outStride = s.op === 'seal' && inline ? s.chunkSize + TAG : s.chunkSize
  const readAt = (length: number, position: number): number => {
    let got = 0
    while (got < length) {
      const n = io.readSync(s.inFd, s.buf, got, length - got, position + got)
      if (n === 0) break
      got += n
    }
    return got
  }
  const writeAt = (bytes: Uint8Array, position: number): void => {
    let off = 0
    // A write that starts on a 1 MiB boundary goes in two, its first page then the rest: one
    // 1 MiB write there makes ext4 (Linux 6.18, large folios) allocate 1 MiB folios, which cost
    // this VM 2.2 s of kernel time a GiB against 0.5 s for the same bytes written shifted
    // (bench/README, "Writes on 1 MiB boundaries"). An open's output and a version 2 capsule's
    // bodies are all written there.
    const HEAD = 4096
    if (position % (1024 * 1024) === 0 && bytes.length > HEAD) {
      while (off < HEAD) off += io.writeSync(s.outFd, bytes, off, HEAD - off, position + off)
    }
    while (off < bytes.length)
      off += io.writeSync(s.outFd, bytes, off, bytes.length - off, position + off)
  }
  const sha256 = (bytes: Uint8Array): Uint8Array =>
    new Uint8Array(io.createHash('sha256').update(bytes).digest())
  // Cipher input goes in 64 KiB slices and each output is freed as soon as it is copied or
  // written (not at the next garbage collection): small blocks that malloc recycles, where a
  // 1 MiB output per chunk would be a fresh mapping in every thread.
  const SLICE = 64 * 1024
  const free = (b: Uint8Array): void => {
    const ab = b.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer }
    if (b.byteOffset === 0 && b.byteLength === ab.byteLength && typeof ab.transfer === 'function')
      ab.transfer(0)
  }
  const inLength = s.op === 'open' && inline ? len + TAG : len
  const got = readAt(inLength, s.inBase + i * inStride)
  if (got !== inLength) return { i, short: got }
  if (s.op === 'open' && !inline) {
    // the tag from the table, after the body in the buffer as a version 1 chunk has it
    let have = 0
    while (have < TAG) {
      const n = io.readSync(s.inFd, s.buf, len + have, TAG - have, s.tagBase + i * TAG + have)
      if (n === 0) return { i, short: got + have }
      have += n
    }
  }
  if (s.op === 'hash') return { i, leaf: sha256(s.buf.subarray(0, len)) }
  const at = s.outBase + i * outStride
  if (s.op === 'seal') {
    const cipher = io.createCipheriv('aes-256-gcm', s.key, nonce)
    cipher.setAAD(s.aad)
    const hash = s.hash ? io.createHash('sha256') : undefined
    const cipherHash = s.hashCipher ? io.createHash('sha256') : undefined
    // The chunk's ciphertext (and tag) replaces its plaintext in the lane's input buffer, slice by
    // slice once hashed and encrypted, and goes out with one pwrite: lanes writing 64 KiB slices
    // into one file contended for its inode lock (ADR 0003, amended 2026-12-06).
    let off = 0
    for (let o = 0; o < len; o += SLICE) {
      const slice = s.buf.subarray(o, Math.min(len, o + SLICE))
      // Hashed and encrypted while the slice is in cache: one read of the input for both.
      hash?.update(slice)
      const body = cipher.update(slice)
      cipherHash?.update(body)
      s.buf.set(body, off)
      off += body.length
      free(body)
    }
    cipher.final()
    const tag = new Uint8Array(cipher.getAuthTag())
    if (!s.deferTag && inline) s.buf.set(tag, off)
    writeAt(s.buf.subarray(0, s.deferTag || !inline ? off : off + TAG), at)
    if (!s.deferTag && !inline) writeAt(tag, s.tagBase + i * TAG)
    return {
      i,
      ...(hash ? { leaf: new Uint8Array(hash.digest()) } : {}),
      ...(cipherHash ? { cipherLeaf: new Uint8Array(cipherHash.digest()) } : {}),
      ...(s.deferTag ? { tag } : {}),
    }
  }
  const decipher = io.createDecipheriv('aes-256-gcm', s.key, nonce)
  decipher.setAAD(s.aad)
  decipher.setAuthTag(s.buf.subarray(len, len + TAG))
  // Each decrypted slice is copied into the lane's reused plaintext buffer and freed at once:
  // holding a chunk's slices until the tag verifies and then freeing them together would
  // hand a whole chunk back to the thread's malloc arena, which returns it to the kernel
  // (a worker's arena trims), and every next chunk would page-fault it in again.
  const hash = s.hash ? io.createHash('sha256') : undefined
  const cipherHash = s.hashCipher ? io.createHash('sha256') : undefined
  let off = 0
  for (let o = 0; o < len; o += SLICE) {
    const body = s.buf.subarray(o, Math.min(len, o + SLICE))
    cipherHash?.update(body)
    const p = decipher.update(body)
    // Hashed while it is in cache; the leaf is used only if the tag verifies.
    hash?.update(p)
    s.plain.set(p, off)
    off += p.length
    p.fill(0)
    free(p)
  }
  try {
    decipher.final()
  } catch {
    s.plain.fill(0, 0, off)
    return { i, bad: true }
  }
  // Only authenticated plaintext is written.
  writeAt(s.plain.subarray(0, off), at)
  return {
    i,
    ...(hash ? { leaf: new Uint8Array(hash.digest()) } : {}),
    ...(cipherHash ? { cipherLeaf: new Uint8Array(cipherHash.digest()) } : {}),
  }
}

/** Runs {@link laneChunk}, turning a thrown file system error into an answer. */
function laneStep(io: LaneIo, s: LaneState, i: number, nonce: Uint8Array): LaneAnswer {
  try {
    return laneChunk(io, s, i, nonce)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return {
      i,
      error: {
        message: String(e?.message),
        ...(e?.code === undefined ? {} : { code: e.code }),
        ...(e?.errno === undefined ? {} : { errno: e.errno }),
        ...(e?.syscall === undefined ? {} : { syscall: e.syscall }),
      },
    }
  }
}

/**
 * The lane worker, plain JavaScript around {@link laneChunk}'s own source. Workers inherit
 * the host's `execArgv`, so under `node --input-type=module` this source runs as an ES module,
 * where `require` does not exist: builtins then come from `process.getBuiltinModule`. A job
 * starts with `{ job, key }` (its parameters and a copy of its key, sent once the worker is up);
 * then one message per chunk, `[index, nonce]`, one answer per chunk. `'park'` ends the job:
 * the key copy and the buffers are zeroed, then it answers `zeroed` and waits for another job
 * (`lane-pool.ts`). `null` does the same and ends the worker. Both functions are bound under
 * their own `.name`: a bundler that renames one where names collide (`laneChunk2`) renames its
 * callers' references too.
 */
const LANE_SOURCE = `
const load = typeof require === 'function' ? require : process.getBuiltinModule
const crypto = load('node:crypto')
const fs = load('node:fs')
const { parentPort } = load('node:worker_threads')
const io = { createCipheriv: crypto.createCipheriv, createDecipheriv: crypto.createDecipheriv, createHash: crypto.createHash, readSync: fs.readSync, writeSync: fs.writeSync }
const ${laneChunk.name} = (${laneChunk.toString()})
const ${laneStep.name} = (${laneStep.toString()})
let state = { key: new Uint8Array(0), buf: new Uint8Array(0), plain: new Uint8Array(0) }
parentPort.on('message', (m) => {
  if (m === null || m === 'park') {
    state.key.fill(0)
    state.buf.fill(0)
    state.plain.fill(0)
    // the job's proof that this worker's key copy is zeroed
    parentPort.postMessage('zeroed')
    if (m === null) parentPort.close()
    return
  }
  if (!Array.isArray(m)) {
    // a job: its parameters and key, sent once this worker is up, never to one still booting
    const { plainSize, ...job } = m.job
    const buf = state.buf.length === job.chunkSize + 16 ? state.buf : new Uint8Array(job.chunkSize + 16)
    const plain = state.plain.length === plainSize ? state.plain : new Uint8Array(plainSize)
    state = { ...job, key: m.key, buf, plain }
    return
  }
  parentPort.postMessage(${laneStep.name}(io, state, m[0], m[1]))
})
`

/** Lane workers between jobs (`lane-pool.ts`), made with the one set of options every job shares. */
export const lanePool = new LaneWorkerPool(
  () =>
    new Worker(LANE_SOURCE, {
      eval: true,
      // Chunks live in external memory: a tiny young generation keeps each worker's RSS low.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    }),
)

const NODE_IO: LaneIo = { createCipheriv, createDecipheriv, createHash, readSync, writeSync }

/** A lane's output buffer: an open's plaintext chunk (a seal encrypts in its input buffer). */
const outBufferSize = (op: LaneOp, chunkSize: number): number => (op === 'open' ? chunkSize : 0)

/** `warmFileLanes` (`warm.ts`), here once the lanes' module is loaded. */
export function warmLanes(options: WarmFileLanesOptions = {}): void {
  let size = options.size ?? PARALLEL_FILE_MIN_BYTES
  if (options.file !== undefined) {
    try {
      size = statSync(options.file).size
    } catch {
      return
    }
  }
  lanePool.warm(Math.max(0, lanesFor(options.threads, size) - 1))
}

/** What a lane does with each chunk. */
export type LaneOp = 'hash' | 'seal' | 'open'

export interface LaneJob {
  op: LaneOp
  /** Input file descriptor; chunk i starts at `inBase + i × stride`. */
  inFd: number
  inBase: number
  /** Output file descriptor (seal, open); must accept positional writes. */
  outFd?: number
  outBase?: number
  /** Payload key (seal, open); each worker gets a copy and zeroes it when done. */
  key?: Uint8Array
  /** The header hash (seal, open). */
  aad?: Uint8Array
  chunkSize: number
  plaintextSize: number
  chunkCount: number
  /** Lanes in all: the calling thread plus `lanes − 1` worker threads. */
  lanes: number
  /** Park the workers for the next job when done (default), or end them with this one. */
  keepWorkers?: boolean | undefined
  /** Called with each chunk's plaintext SHA-256 (hash; seal and open when given), in chunk order. */
  onLeaf?: (leaf: Uint8Array) => void
  /**
   * Seal, open: called with the SHA-256 of each chunk's ciphertext body, in chunk order
   * (version 2's commitment leaves, which are also its bodies' IPFS leaf digests).
   */
  onCipherLeaf?: (leaf: Uint8Array) => void
  /**
   * Version 2 (seal, open): chunk i's tag is at `tagBase + 16 × i` of the capsule file (the
   * output's for a seal, the input's for an open) and the bodies have no tags between them.
   */
  tagBase?: number
  /**
   * Seal: called with each chunk's tag (any order) instead of writing it to the output; the
   * caller writes it at the chunk's end.
   */
  onTag?: (chunk: number, tag: Uint8Array) => void
  /** Called after each chunk is done, in chunk order, with the number of chunks done. */
  onChunks?: (done: number) => void
}

/** A chunk the lanes could not process: the caller decides what error it means. */
export class LaneChunkFailure extends Error {
  readonly chunk: number
  readonly kind: 'bad' | 'short'
  constructor(chunk: number, kind: 'bad' | 'short') {
    super(`chunk ${chunk}: ${kind}`)
    this.chunk = chunk
    this.kind = kind
  }
}

interface LaneAnswer {
  i: number
  leaf?: Uint8Array
  cipherLeaf?: Uint8Array
  tag?: Uint8Array
  bad?: true
  short?: number
  error?: { message: string; code?: string; errno?: number; syscall?: string }
}

/** A lane worker that errored or exited unasked: the job fails closed. */
function workerFailure(cause: unknown, exitCode?: number): CapsuleIntegrityError {
  return new CapsuleIntegrityError('a payload worker thread failed', {
    details: { reason: 'lane-worker', ...(exitCode === undefined ? {} : { exitCode }) },
    cause,
  })
}

/**
 * Fault injection for tests (not exported by the package): with `waitForWorkers`, the calling
 * thread takes no chunk until every worker is up or gone, so a worker's fault always meets work.
 */
export const laneFaults: { waitForWorkers?: boolean | undefined } = {}

/** Chunks queued on one worker: enough that it never idles while the main thread computes. */
const PER_WORKER = 3

/**
 * Runs a job over every chunk: the calling thread takes chunks itself between handing them
 * out to `lanes − 1` worker threads. Resolves when every chunk is done; rejects with
 * {@link LaneChunkFailure} for the lowest failing chunk, with the file system error a lane met
 * (recreated with its `code`), or with a worker failure (`CAPSULE_INTEGRITY`, reason
 * `lane-worker`: fail closed).
 */
export async function runLanes(job: LaneJob): Promise<void> {
  const n = job.chunkCount
  // `lanes: 1` runs every chunk on the calling thread (no worker).
  const workerCount = Math.max(0, Math.min(job.lanes, n) - 1)
  const window = (workerCount * PER_WORKER + 1) * 2
  const state = (buf: Uint8Array, plain: Uint8Array): LaneState => ({
    op: job.op,
    hash: job.onLeaf !== undefined,
    hashCipher: job.onCipherLeaf !== undefined,
    tagBase: job.tagBase ?? -1,
    deferTag: job.onTag !== undefined,
    inFd: job.inFd,
    outFd: job.outFd ?? -1,
    key: job.key ?? new Uint8Array(0),
    aad: job.aad ?? new Uint8Array(0),
    chunkSize: job.chunkSize,
    plaintextSize: job.plaintextSize,
    chunkCount: n,
    inBase: job.inBase,
    outBase: job.outBase ?? 0,
    buf,
    plain,
  })
  const mainState = state(
    new Uint8Array(job.chunkSize + 16),
    new Uint8Array(outBufferSize(job.op, job.chunkSize)),
  )
  const workers: Worker[] = []
  const online: boolean[] = []
  const outstanding: number[] = []
  const exited: boolean[] = []
  const ready = new Map<number, LaneAnswer>()
  let nextChunk = 0
  let nextInOrder = 0
  let failure: unknown
  let failedChunk = Number.POSITIVE_INFINITY
  let busy = 0
  let wake: (() => void) | undefined

  const fail = (err: unknown, chunk = Number.POSITIVE_INFINITY) => {
    // Keep the error of the lowest chunk: the one a sequential pass would have met first.
    if (failure === undefined || chunk < failedChunk) {
      failure = err
      failedChunk = chunk
    }
  }
  const settle = (a: LaneAnswer) => {
    if (a.error) {
      fail(Object.assign(new Error(a.error.message), a.error), a.i)
    } else if (a.bad || a.short !== undefined) {
      fail(new LaneChunkFailure(a.i, a.bad ? 'bad' : 'short'), a.i)
    } else {
      if (a.tag) job.onTag?.(a.i, a.tag)
      ready.set(a.i, a)
      if (failure !== undefined) return
      const before = nextInOrder
      while (ready.has(nextInOrder)) {
        const done = ready.get(nextInOrder) as LaneAnswer
        ready.delete(nextInOrder)
        if (done.leaf) job.onLeaf?.(done.leaf)
        if (done.cipherLeaf) job.onCipherLeaf?.(done.cipherLeaf)
        nextInOrder++
      }
      if (nextInOrder > before) job.onChunks?.(nextInOrder)
    }
  }
  const canTake = () => failure === undefined && nextChunk < n && nextChunk < nextInOrder + window
  const take = () => {
    const i = nextChunk++
    return { i, nonce: chunkNonce(i, i === n - 1) }
  }
  const dispatch = () => {
    for (let w = 0; w < workers.length; w++) {
      // A worker still booting (~40–75 ms) gets nothing: chunks queued on it held back the
      // in-order window while the calling thread, out of chunks it could take, sat idle.
      if (!online[w]) continue
      while ((outstanding[w] as number) < PER_WORKER && canTake()) {
        const { i, nonce } = take()
        outstanding[w] = (outstanding[w] as number) + 1
        busy++
        ;(workers[w] as Worker).postMessage([i, nonce])
      }
    }
  }
  const nudge = () => {
    const w = wake
    wake = undefined
    w?.()
  }

  let closing = false
  // The job as a worker takes it: its parameters (it sizes its own buffers from them) and a
  // copy of the key, sent once the worker is up.
  const {
    key: _key,
    buf: _buf,
    plain: _plain,
    ...params
  } = state(new Uint8Array(0), new Uint8Array(0))
  const jobMessage = {
    job: { ...params, plainSize: outBufferSize(job.op, job.chunkSize) },
    key: job.key ?? new Uint8Array(0),
  }
  try {
    // Parked workers first (already up, or booting since a warm-up), then new ones. They are
    // made inside the try: if one cannot be made (no thread left), the job fails closed and the
    // ones it holds are parked again in `finally`, never left with the key and chunks.
    const pooled = lanePool.take(workerCount)
    for (let w = 0; w < workerCount; w++) {
      let entry: PooledWorker
      try {
        entry = pooled[w] ?? { worker: lanePool.spawn(), online: false }
      } catch (err) {
        // no thread to be had (ERR_WORKER_INIT_FAILED): the job fails closed like a dead worker
        fail(workerFailure(err))
        break
      }
      const worker = entry.worker
      workers.push(worker)
      online.push(false)
      outstanding.push(0)
      exited.push(false)
      const start = () => {
        if (closing) return
        online[w] = true
        worker.postMessage(jobMessage)
        dispatch()
        nudge()
      }
      worker.on('message', (a: LaneAnswer) => {
        outstanding[w] = (outstanding[w] as number) - 1
        busy--
        settle(a)
        dispatch()
        nudge()
      })
      const died = (cause: unknown, exitCode?: number) => {
        fail(workerFailure(cause, exitCode))
        // Its chunks will never be answered.
        busy -= outstanding[w] as number
        outstanding[w] = 0
        nudge()
      }
      worker.on('error', (err) => died(err))
      worker.on('exit', (code) => {
        exited[w] = true
        died(undefined, code)
      })
      if (entry.online) start()
      else worker.once('online', start)
    }
    for (;;) {
      dispatch()
      const held = laneFaults.waitForWorkers && workers.some((_, w) => !online[w] && !exited[w])
      if (canTake() && !held) {
        // The calling thread's own share; then let the workers' answers in.
        const { i, nonce } = take()
        settle(laneStep(NODE_IO, mainState, i, nonce))
        await new Promise<void>((resolve) => setImmediate(resolve))
        continue
      }
      if (busy === 0 && (failure !== undefined || nextInOrder === n)) break
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  } finally {
    closing = true
    const keep = job.keepWorkers !== false
    mainState.buf.fill(0)
    mainState.plain.fill(0)
    // Each worker zeroes its key copy and buffers and says so, then is parked for the next job;
    // one that says nothing within a second is terminated.
    await Promise.all(
      workers.map(async (worker, w) => {
        if (exited[w]) return
        worker.removeAllListeners('online')
        if (!online[w]) {
          // Still booting when the calling thread had done every chunk (or the job failed): it
          // was given no key and no chunk, so it is parked as it is and comes up idle (or, for a
          // job that keeps no workers, stopped now). A worker that would have crashed as it
          // started goes unnoticed here: it never touched the job.
          if (keep) {
            dropListeners(worker)
            return lanePool.park(worker, false)
          }
          await endWorker(worker)
          return
        }
        worker.removeAllListeners('exit')
        worker.removeAllListeners('error')
        worker.removeAllListeners('message')
        let crash: unknown
        worker.on('error', (err) => {
          crash = err
        })
        let stuck = false
        let zeroed = false
        // parked: over once it says `zeroed`; ended: once it exits, having said it
        const end = new Promise<number | undefined>((resolve) => {
          worker.on('message', (m) => {
            if (m !== 'zeroed') return
            zeroed = true
            if (keep) resolve(undefined)
          })
          worker.once('exit', resolve)
        })
        worker.postMessage(keep ? 'park' : null)
        const timer = setTimeout(() => {
          stuck = true
          void worker.terminate()
        }, 1000)
        const exitCode = await end
        clearTimeout(timer)
        if (zeroed && exitCode === undefined) {
          dropListeners(worker)
          lanePool.park(worker, true)
          return
        }
        // Any end but the asked one fails the job, even for a worker given no chunk (the calling
        // thread did them all): as it would have with chunks in hand.
        if (!zeroed && !stuck) fail(workerFailure(crash, exitCode))
      }),
    )
  }
  if (failure !== undefined) throw failure
}
