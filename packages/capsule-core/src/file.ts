/**
 * File-to-file sealing and opening: the fast, constant-memory path for local files.
 *
 * Reads go into two reused chunk buffers (the next read runs while the current chunk is
 * encrypted), and every cipher output is released as soon as it is written, so memory does
 * not grow with the file and does not wait for the garbage collector. Output is written to a
 * temporary file next to the target and renamed into place only on success, so a failure
 * never leaves a half-written capsule or unverified plaintext behind.
 */

import { randomBytes } from 'node:crypto'
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { concatBytes, equalBytes } from './bytes.ts'
import { type OpenOptions, prepareOpen, prepareSeal, type SealParameters } from './capsule.ts'
import { CapsuleIntegrityError, CapsuleTruncatedError, InvalidArgumentError } from './errors.ts'
import { CAPSULE_PREAMBLE_LENGTH, CAPSULE_SIGNATURE_LENGTH, CHUNK_TAG_LENGTH } from './header.ts'
import { createPlaintextCommitment, deriveCommitmentKey } from './keys.ts'
import {
  checkPreamble,
  chunkPlaintextLength,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from './parse.ts'
import { commitmentMismatch, encryptChunk } from './payload.ts'

/** Frees a buffer's memory now instead of at the next garbage collection. */
function release(buffers: Uint8Array[]): void {
  for (const b of buffers) {
    // Only buffers that own their whole ArrayBuffer (cipher outputs) are released.
    const ab = b.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer }
    if (b.byteOffset === 0 && b.byteLength === ab.byteLength && typeof ab.transfer === 'function')
      ab.transfer(0)
  }
}

async function readFully(
  fh: FileHandle,
  buf: Uint8Array,
  length: number,
  position: number,
): Promise<number> {
  let got = 0
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return got
}

/**
 * The commitment hasher's worker, plain CommonJS so it runs from the bundle and from the
 * sources alike. It owns a copy of the commitment key (zeroed once the HMAC is keyed), takes
 * plaintext pieces whose memory the main thread transferred, frees each piece once hashed,
 * acknowledges every message (the main thread's backpressure), and answers `null` with the
 * digest.
 */
const HASHER_SOURCE = `
const { createHmac } = require('node:crypto')
const { parentPort, workerData } = require('node:worker_threads')
const hmac = createHmac('sha256', workerData.key)
workerData.key.fill(0)
parentPort.on('message', (pieces) => {
  if (pieces === null) {
    parentPort.postMessage(new Uint8Array(hmac.digest()))
    return
  }
  for (const p of pieces) {
    hmac.update(p)
    if (typeof p.buffer.transfer === 'function') p.buffer.transfer(0)
  }
  parentPort.postMessage(pieces.length)
})
`

/** Messages (one per chunk) the hasher may have queued before `feed` waits. */
const HASHER_IN_FLIGHT = 2

/**
 * `openFile` checks the plaintext commitment in a worker thread, concurrently with
 * decryption, when the capsule is at least this large and the machine has two or more
 * cores. Starting the worker costs ~40 ms of CPU (more wall time on a busy machine) and the
 * overlap saves ~0.45 ms per MiB (the decryption time), so below this size the inline check wins.
 */
export const PARALLEL_COMMITMENT_MIN_BYTES = 128 * 1024 * 1024

/** HMAC-SHA256 of the plaintext, computed in a worker thread while the caller decrypts. */
interface CommitmentHasher {
  /** Hands plaintext pieces to the worker (their memory moves there); waits while it lags. */
  feed(pieces: Uint8Array[]): Promise<void>
  /** The HMAC of everything fed. */
  digest(): Promise<Uint8Array>
  close(): Promise<void>
}

function ownsBuffer(b: Uint8Array): boolean {
  return (
    b.byteOffset === 0 &&
    b.byteLength === b.buffer.byteLength &&
    !(b.buffer instanceof SharedArrayBuffer)
  )
}

function startHasher(commitmentKey: Uint8Array): CommitmentHasher {
  const worker = new Worker(HASHER_SOURCE, {
    eval: true,
    workerData: { key: commitmentKey },
    // The worker only hashes (the pieces are external memory): a small young generation keeps
    // its RSS low; the old-generation cap has ample margin (it uses a few MiB).
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32 },
  })
  commitmentKey.fill(0)
  let inFlight = 0
  let failure: unknown
  let waiter: (() => void) | undefined
  let result: Uint8Array | undefined
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.()
  }
  worker.on('message', (m: number | Uint8Array) => {
    if (typeof m === 'number') inFlight--
    else result = m
    wake()
  })
  // Fail closed: if the worker dies, the commitment was not checked.
  const fail = (cause: unknown, exitCode?: number) => {
    failure ??= new CapsuleIntegrityError('the plaintext commitment could not be checked', {
      details: { reason: 'commitment-worker', ...(exitCode === undefined ? {} : { exitCode }) },
      cause,
    })
    wake()
  }
  worker.on('error', (err) => fail(err))
  worker.on('exit', (code) => fail(undefined, code))
  const until = async (done: () => boolean) => {
    while (!done()) {
      if (failure !== undefined) throw failure
      await new Promise<void>((resolve) => {
        waiter = resolve
      })
    }
  }
  return {
    async feed(pieces) {
      if (pieces.length === 0) return
      if (failure !== undefined) throw failure
      const owned = pieces.map((p) => (ownsBuffer(p) ? p : new Uint8Array(p)))
      try {
        worker.postMessage(
          owned,
          owned.map((p) => p.buffer as ArrayBuffer),
        )
      } catch {
        // A buffer Node marks untransferable: send copies instead.
        worker.postMessage(owned)
      }
      inFlight++
      await until(() => inFlight < HASHER_IN_FLIGHT)
    },
    async digest() {
      worker.postMessage(null)
      await until(() => result !== undefined)
      return result as Uint8Array
    },
    async close() {
      worker.removeAllListeners('exit')
      await worker.terminate()
    },
  }
}

interface Target {
  fh: FileHandle
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Opens `path` for writing: via a temp file + rename for regular files, directly otherwise (e.g. /dev/null). */
async function openTarget(path: string): Promise<Target> {
  const existing = await stat(path).catch(() => undefined)
  if (existing && !existing.isFile()) {
    const fh = await open(path, 'w')
    return { fh, commit: () => fh.close(), abort: () => fh.close() }
  }
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`)
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  return {
    fh,
    async commit() {
      await fh.sync()
      await fh.close()
      await rename(tmp, path)
    },
    async abort() {
      await fh.close().catch(() => {})
      await unlink(tmp).catch(() => {})
    },
  }
}

/**
 * Seals the file at `input` into a capsule at `output`. The header (see
 * `createPlaintextCommitment` / {@link commitPlaintextFile}) must describe this file.
 *
 * @throws {InvalidArgumentError} if the file size differs from the header, or the key or signature do not match.
 * @throws {CapsuleSignatureError} if the signature is not the owner's.
 * @throws Node's file system errors (ENOENT, EACCES, ENOSPC, …) unchanged.
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * const header = createCapsuleHeader({ ...fields, capsuleId, dataKey, commitment })
 * await sealFile({ header, signature, dataKey, input: 'data.bin', output: 'data.capsule' })
 * ```
 */
export async function sealFile(
  params: SealParameters & {
    input: string
    output: string
    /** Called after each chunk is written, with the plaintext bytes sealed so far. */
    onProgress?: (plaintextBytes: number) => void
  },
): Promise<ParsedCapsuleHeader> {
  const { prefix, parsed, payloadKey } = prepareSeal(params)
  const { chunkSize, plaintextSize } = parsed.header.payload
  const src = await open(params.input, 'r')
  let target: Target | undefined
  try {
    const { size } = await src.stat()
    if (size !== plaintextSize) {
      throw new InvalidArgumentError('input file size differs from header.payload.plaintextSize', {
        details: { size, plaintextSize },
      })
    }
    target = await openTarget(params.output)
    await target.fh.write(prefix)
    const bufs = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)]
    const n = parsed.chunkCount
    let next = readFully(src, bufs[0] as Uint8Array, chunkPlaintextLength(parsed.header, 0), 0)
    let pendingWrite: Promise<unknown> = Promise.resolve()
    let pendingOut: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const len = chunkPlaintextLength(parsed.header, i)
      const got = await next
      if (got !== len)
        throw new InvalidArgumentError('input file changed while sealing', {
          details: { chunk: i },
        })
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n) {
        next = readFully(
          src,
          bufs[(i + 1) % 2] as Uint8Array,
          chunkPlaintextLength(parsed.header, i + 1),
          (i + 1) * chunkSize,
        )
      }
      const out = encryptChunk(payloadKey, parsed.headerHash, i, i === n - 1, [
        buf.subarray(0, len),
      ])
      await pendingWrite
      release(pendingOut)
      pendingOut = out
      const sealed = i * chunkSize + len
      pendingWrite = target.fh.writev(out).then(() => params.onProgress?.(sealed))
    }
    await pendingWrite
    release(pendingOut)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    payloadKey.fill(0)
    await src.close()
    if (target) await target.abort()
  }
}

/**
 * Opens the capsule file at `input` and writes its plaintext to `output`. The plaintext
 * appears at `output` only if the whole capsule verified (signature, key, every chunk, the
 * plaintext commitment); when `output` is a device such as /dev/null it is written as it goes,
 * and a rejected call means the output must be discarded.
 *
 * For capsules of 128 MiB or more on a machine with two or more
 * cores, the plaintext commitment (HMAC-SHA256, slower than the decryption) is computed in a
 * worker thread while this thread decrypts; the result and the errors are the same.
 *
 * @throws the same typed errors as `openCapsule`, and Node's file system errors unchanged.
 * @example
 * ```ts
 * const parsed = await openFile({ input: 'data.capsule', output: 'data.bin', dataKey })
 * ```
 */
export async function openFile(
  options: OpenOptions & { input: string; output: string },
): Promise<ParsedCapsuleHeader> {
  return openFileWith(options, 'auto')
}

/**
 * {@link openFile} with the commitment check's placement forced (for tests and the
 * benchmark): `worker` checks it in a worker thread, `inline` on the calling thread, `auto`
 * picks the worker for capsules of {@link PARALLEL_COMMITMENT_MIN_BYTES} or more on a
 * machine with two or more cores.
 */
export async function openFileWith(
  options: OpenOptions & { input: string; output: string },
  commitment: 'auto' | 'worker' | 'inline',
): Promise<ParsedCapsuleHeader> {
  const src = await open(options.input, 'r')
  let target: Target | undefined
  let hasher: CommitmentHasher | undefined
  try {
    const pre = new Uint8Array(CAPSULE_PREAMBLE_LENGTH)
    const preLen = await readFully(src, pre, pre.length, 0)
    const headerLength = checkPreamble(pre.subarray(0, preLen))
    if (headerLength === undefined) {
      throw new CapsuleTruncatedError('capsule ends inside its preamble', {
        details: { length: preLen },
      })
    }
    const rest = new Uint8Array(headerLength + CAPSULE_SIGNATURE_LENGTH)
    const restLen = await readFully(src, rest, rest.length, CAPSULE_PREAMBLE_LENGTH)
    const parsed = parseCapsuleHeader(concatBytes(pre, rest.subarray(0, restLen)))
    const parallel =
      options.checkCommitment !== false &&
      (commitment === 'worker' ||
        (commitment === 'auto' &&
          availableParallelism() >= 2 &&
          parsed.header.payload.plaintextSize >= PARALLEL_COMMITMENT_MIN_BYTES))
    // In parallel mode the opener only authenticates chunks; the worker hashes the plaintext.
    const opener = prepareOpen(parsed, parallel ? { ...options, checkCommitment: false } : options)
    if (parallel) {
      hasher = startHasher(deriveCommitmentKey(options.dataKey, parsed.header.capsuleId))
    }
    target = await openTarget(options.output)
    const { chunkSize } = parsed.header.payload
    const size = (i: number) => chunkPlaintextLength(parsed.header, i) + CHUNK_TAG_LENGTH
    const at = (i: number) => parsed.payloadOffset + i * (chunkSize + CHUNK_TAG_LENGTH)
    const bufs = [
      new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
      new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
    ]
    const n = parsed.chunkCount
    let next = readFully(src, bufs[0] as Uint8Array, size(0), at(0))
    let pendingWrite: Promise<unknown> = Promise.resolve()
    let pendingOut: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const got = await next
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n && got === size(i))
        next = readFully(src, bufs[(i + 1) % 2] as Uint8Array, size(i + 1), at(i + 1))
      // The opener consumes exactly one chunk per call, so it keeps no reference to `buf`.
      const out = opener.write(buf.subarray(0, got))
      if (got < size(i)) opener.end()
      await pendingWrite
      if (hasher) await hasher.feed(pendingOut)
      else release(pendingOut)
      pendingOut = out
      pendingWrite = target.fh.writev(out)
    }
    const extra = new Uint8Array(1)
    if ((await readFully(src, extra, 1, at(n - 1) + size(n - 1))) > 0) opener.write(extra)
    opener.end()
    await pendingWrite
    if (hasher) {
      await hasher.feed(pendingOut)
      const digest = await hasher.digest()
      if (!equalBytes(digest, parsed.header.payload.plaintextCommitment)) throw commitmentMismatch()
    } else release(pendingOut)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    await hasher?.close()
    await src.close()
    if (target) await target.abort()
  }
}

/**
 * Computes the plaintext commitment of a file (the first of the two passes a sealed file
 * needs; see SPEC.md §4.3), reading it in 1 MiB pieces into two reused buffers: the next
 * read runs in the thread pool while the current piece is hashed.
 *
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * ```
 */
export async function commitPlaintextFile(
  path: string,
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  options: { onProgress?: (plaintextBytes: number) => void } = {},
): Promise<{ plaintextSize: number; plaintextCommitment: Uint8Array }> {
  const c = createPlaintextCommitment(dataKey, capsuleId)
  const fh = await open(path, 'r')
  try {
    const piece = 1024 * 1024
    const bufs = [new Uint8Array(piece), new Uint8Array(piece)]
    let pos = 0
    let next = readFully(fh, bufs[0] as Uint8Array, piece, pos)
    for (let i = 0; ; i++) {
      const got = await next
      if (got === 0) break
      pos += got
      const buf = bufs[i % 2] as Uint8Array
      // A short read is the end of the file; one more read confirms it (and catches growth).
      next = readFully(fh, bufs[(i + 1) % 2] as Uint8Array, piece, pos)
      c.update(got === piece ? buf : buf.subarray(0, got))
      options.onProgress?.(pos)
    }
    return c.digest()
  } finally {
    await fh.close()
  }
}
