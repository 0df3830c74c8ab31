/**
 * File-to-file sealing and opening: the fast, constant-memory path for local files.
 *
 * Large payloads run on every core (`file-lanes.ts`: worker threads that each process whole
 * chunks in place). On one thread, reads go into two reused chunk buffers (the next read runs while the current chunk is
 * encrypted), and every cipher output is released as soon as it is written, so memory does
 * not grow with the file and does not wait for the garbage collector. Output is written to a
 * temporary file next to the target and renamed into place only on success, so a failure
 * never leaves a half-written capsule or unverified plaintext behind.
 */

import { randomBytes } from 'node:crypto'
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename, dirname, join } from 'node:path'
import {
  type CreateCapsuleHeaderParameters,
  checkDataKey,
  createCapsuleHeader,
  type OpenOptions,
  prepareOpen,
  prepareSeal,
  type SealParameters,
  verifyCapsuleHeader,
} from './capsule.ts'
import { checkBytes, concatBytes, equalBytes } from './encoding/bytes.ts'
import type { Hex } from './encoding/hex.ts'
import { CapsuleTruncatedError, InvalidArgumentError } from './errors.ts'
import { LaneChunkFailure, runLanes } from './file-lanes.ts'
import { gcmTagDelta, ghashKey } from './ghash.ts'
import {
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  type CapsuleHeader,
  CHUNK_TAG_LENGTH,
  DEFAULT_CHUNK_SIZE,
  encodeCapsuleHeader,
} from './header.ts'
import {
  createCommitmentCombiner,
  createPlaintextCommitment,
  DATA_KEY_LENGTH,
  deriveCommitmentKey,
  derivePayloadKey,
  generateCapsuleId,
  type PlaintextCommitment,
  type PlaintextCommitter,
} from './keys.ts'
import {
  checkPreamble,
  chunkCountFor,
  chunkPlaintextLength,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from './parse.ts'
import { commitmentMismatch, encryptChunk, type PayloadOpener, trailingData } from './payload.ts'

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
 * The file helpers process chunks on several cores (worker-thread lanes, one per core, at most
 * {@link MAX_FILE_THREADS}) when the payload is at least this large and the machine has two or
 * more cores. Starting the workers costs ~30–40 ms of CPU; below this size one thread wins.
 */
export const PARALLEL_FILE_MIN_BYTES = 32 * 1024 * 1024

/** Upper bound on worker lanes: past four, the page cache copy, not the crypto, is the limit. */
export const MAX_FILE_THREADS = 4

/** Option shared by the file helpers. */
export interface FileThreadsOption {
  /**
   * Worker threads for the payload. Default: one per core (at most {@link MAX_FILE_THREADS})
   * for payloads of {@link PARALLEL_FILE_MIN_BYTES} or more on machines with two or more
   * cores, else the calling thread alone. `1` keeps the work on the calling thread (e.g. a
   * daemon that must leave cores free); `n ≥ 2` uses `n` lanes whatever the size.
   */
  threads?: number
}

/** Lanes for a payload of `size` bytes, or 0 for the calling thread alone. */
function lanesFor(threads: number | undefined, size: number): number {
  if (threads !== undefined) {
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new InvalidArgumentError('threads must be a positive integer', {
        details: { threads },
      })
    }
    return threads === 1 ? 0 : Math.min(MAX_FILE_THREADS, threads)
  }
  const cores = availableParallelism()
  return cores >= 2 && size >= PARALLEL_FILE_MIN_BYTES ? Math.min(MAX_FILE_THREADS, cores) : 0
}

interface Target {
  fh: FileHandle
  /** Whether the output takes positional writes (regular files, /dev/null; not pipes). */
  positional(): Promise<boolean>
  /** Sets a regular file's final size up front, so out-of-order writes never extend it. */
  presize(size: number): Promise<void>
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Opens `path` for writing: via a temp file + rename for regular files, directly otherwise (e.g. /dev/null). */
async function openTarget(path: string): Promise<Target> {
  const existing = await stat(path).catch(() => undefined)
  if (existing && !existing.isFile()) {
    const fh = await open(path, 'w')
    return {
      fh,
      positional: () =>
        fh.write(new Uint8Array(0), 0, 0, 0).then(
          () => existing.isCharacterDevice() || existing.isBlockDevice(),
          () => false,
        ),
      presize: async () => {},
      commit: () => fh.close(),
      abort: () => fh.close(),
    }
  }
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`)
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  return {
    fh,
    positional: async () => true,
    presize: (size) => fh.truncate(size),
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

/** Parameters of {@link sealFile}. */
export type SealFileParameters = SealParameters &
  FileThreadsOption & {
    input: string
    output: string
    /** Called as chunks are written, with the plaintext bytes sealed so far. */
    onProgress?: (plaintextBytes: number) => void
  }

/**
 * Seals the file at `input` into a capsule at `output`. The header (see
 * `createPlaintextCommitment` / {@link commitPlaintextFile}) must describe this file.
 *
 * Payloads of 32 MiB or more are encrypted on every core (worker-thread lanes writing their
 * chunks in place) when the output takes positional writes; pipes and one-core machines use
 * one thread. The bytes are the same either way.
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
export async function sealFile(params: SealFileParameters): Promise<ParsedCapsuleHeader> {
  const { prefix, parsed, payloadKey } = prepareSeal(params)
  const { plaintextSize } = parsed.header.payload
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
    await writeSealed(src, target, prefix, parsed, payloadKey, params)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    payloadKey.fill(0)
    await src.close()
    if (target) await target.abort()
  }
}

/** The encrypt pass of a header given in advance: lanes when they pay, else one thread. */
async function writeSealed(
  src: FileHandle,
  target: Target,
  prefix: Uint8Array,
  parsed: ParsedCapsuleHeader,
  payloadKey: Uint8Array,
  params: FileThreadsOption & { onProgress?: ((plaintextBytes: number) => void) | undefined },
): Promise<void> {
  const { chunkSize, plaintextSize } = parsed.header.payload
  const lanes = lanesFor(params.threads, plaintextSize)
  if (lanes > 0 && (await target.positional())) {
    await target.presize(prefix.length + plaintextSize + parsed.chunkCount * CHUNK_TAG_LENGTH)
    await target.fh.write(prefix, 0, prefix.length, 0)
    await runLanes({
      op: 'seal',
      inFd: src.fd,
      inBase: 0,
      outFd: target.fh.fd,
      outBase: prefix.length,
      key: payloadKey,
      aad: parsed.headerHash,
      chunkSize,
      plaintextSize,
      chunkCount: parsed.chunkCount,
      lanes,
      onChunks: (done) => params.onProgress?.(Math.min(plaintextSize, done * chunkSize)),
    }).catch((err: unknown) => {
      if (!(err instanceof LaneChunkFailure)) throw err
      throw inputChanged(err.chunk)
    })
  } else {
    await sealSequential(src, target.fh, prefix, parsed, payloadKey, params.onProgress)
  }
}

/** Parameters of {@link commitAndSealFile}: the header's fields, a signer and the files. */
export type CommitAndSealFileParameters = Omit<
  CreateCapsuleHeaderParameters,
  'plaintext' | 'commitment'
> &
  FileThreadsOption & {
    input: string
    output: string
    /**
     * Signs the finished header for its owner (EIP-712, `capsuleTypedData`): e.g.
     * `(header) => signCapsuleHeader(header, ownerKey)`, or a wallet's `signTypedData`.
     * Called once, after the payload is encrypted and before anything is renamed into place.
     */
    sign: (header: CapsuleHeader) => Uint8Array | Hex | Promise<Uint8Array | Hex>
    /** Called as chunks are written, with the plaintext bytes sealed so far. */
    onProgress?: (plaintextBytes: number) => void
  }

/**
 * Memory bounds of the file helpers. Internal (not exported by the package); tests lower
 * them to reach the fallbacks with small files.
 */
export const fileLimits = {
  /**
   * Above this many bytes of chunk tags held in memory (16 per chunk: 4 MiB is 256 GiB of
   * payload at the default 1 MiB chunk), {@link commitAndSealFile} reads the input twice.
   */
  maxHeldTagBytes: 4 * 1024 * 1024,
}

/**
 * Seals the file at `input` into a capsule at `output` in one read of the input: the
 * plaintext commitment, the header and the owner's signature are made along the way.
 *
 * Every chunk is hashed and encrypted in the same pass, on every core for inputs of 32 MiB
 * or more. The chunks are sealed before the header exists, so each chunk's GCM tag is first
 * computed for a zero AAD and then moved to the header hash (GHASH is linear in the AAD,
 * `ghash.ts`); the bytes are exactly those of {@link commitPlaintextFile} followed by
 * {@link sealFile}. Because the input is read once, the commitment always describes the
 * bytes that were encrypted, even if the file changes meanwhile (which then fails).
 * Outputs that take no positional writes (pipes) get the two passes instead.
 *
 * @returns the parsed, signed header.
 * @throws {InvalidArgumentError} for an invalid field, key or chunk size (before any work),
 *   an input that is not a regular file or that changes while it is read, or a signature
 *   of the wrong length.
 * @throws {CapsuleSignatureError} if `sign` returns a signature that is not the owner's.
 * @throws Node's file system errors (ENOENT, EACCES, ENOSPC, …) unchanged.
 * @example
 * ```ts
 * const parsed = await commitAndSealFile({
 *   owner, policy, keyguard, runtime: { kind: 'data' }, dataKey,
 *   sign: (header) => signCapsuleHeader(header, ownerKey),
 *   input: 'data.bin', output: 'data.capsule',
 * })
 * ```
 */
export async function commitAndSealFile(
  params: CommitAndSealFileParameters,
): Promise<ParsedCapsuleHeader> {
  const { input, output, sign, threads, onProgress, ...fields } = params
  checkBytes('dataKey', fields.dataKey, DATA_KEY_LENGTH)
  const dataKey = fields.dataKey
  const capsuleId = fields.capsuleId ?? generateCapsuleId()
  const createdAt = fields.createdAt ?? Math.floor(Date.now() / 1000)
  const chunkSize = fields.chunkSize ?? DEFAULT_CHUNK_SIZE
  const src = await open(input, 'r')
  let target: Target | undefined
  try {
    const info = await src.stat()
    if (!info.isFile()) {
      throw new InvalidArgumentError('input must be a regular file', {
        details: { input },
        hint: 'Seal pipes and sockets with sealNodeStream or sealStream.',
      })
    }
    const size = info.size
    const headerFor = (plaintextCommitment: Uint8Array): CapsuleHeader =>
      createCapsuleHeader({
        ...fields,
        capsuleId,
        createdAt,
        commitment: { plaintextSize: size, chunkSize, plaintextCommitment },
      })
    // Every field is checked, and the payload's offset fixed, before any chunk is sealed:
    // the commitment is the only field still to come, and it has a fixed length.
    const headerLength = encodeCapsuleHeader(headerFor(new Uint8Array(32))).length
    const prefixLength = CAPSULE_PREAMBLE_LENGTH + headerLength + CAPSULE_SIGNATURE_LENGTH
    const chunkCount = chunkCountFor(size, chunkSize)
    target = await openTarget(output)
    const onePass =
      chunkCount * CHUNK_TAG_LENGTH <= fileLimits.maxHeldTagBytes && (await target.positional())
    const finish = async (commitment: Uint8Array) => {
      const header = headerFor(commitment)
      const signature = await sign(header)
      return prepareSeal({ header, signature, dataKey })
    }
    if (!onePass) {
      const commitment = await commitPlaintextFile(input, dataKey, capsuleId, {
        chunkSize,
        ...(threads === undefined ? {} : { threads }),
      })
      const { prefix, parsed, payloadKey } = await finish(commitment.plaintextCommitment)
      try {
        await writeSealed(src, target, prefix, parsed, payloadKey, {
          ...(threads === undefined ? {} : { threads }),
          onProgress,
        })
      } finally {
        payloadKey.fill(0)
      }
      await target.commit()
      target = undefined
      return parsed
    }

    const zeroAad = new Uint8Array(32)
    const combiner = createCommitmentCombiner(deriveCommitmentKey(dataKey, capsuleId))
    const tags = new Uint8Array(chunkCount * CHUNK_TAG_LENGTH)
    const payloadKey = derivePayloadKey(dataKey, capsuleId)
    const h = ghashKey(payloadKey)
    try {
      await target.presize(prefixLength + size + chunkCount * CHUNK_TAG_LENGTH)
      await runLanes({
        op: 'seal',
        inFd: src.fd,
        inBase: 0,
        outFd: target.fh.fd,
        outBase: prefixLength,
        key: payloadKey,
        aad: zeroAad,
        chunkSize,
        plaintextSize: size,
        chunkCount,
        lanes: Math.max(1, lanesFor(threads, size)),
        onLeaf: (leaf) => combiner.add(leaf),
        onTag: (i, tag) => tags.set(tag, i * CHUNK_TAG_LENGTH),
        onChunks: (done) => onProgress?.(Math.min(size, done * chunkSize)),
      }).catch((err: unknown) => {
        if (!(err instanceof LaneChunkFailure)) throw err
        throw inputChanged(err.chunk)
      })
      if ((await src.stat()).size !== size) throw inputChanged(chunkCount)
      const { prefix, parsed, payloadKey: sealKey } = await finish(combiner.digest())
      sealKey.fill(0)
      if (prefix.length !== prefixLength) throw new Error('header length changed while sealing')
      // Move every tag from the zero AAD to the header hash, then write header and tags.
      const lastLength = chunkPlaintextLength(parsed.header, chunkCount - 1)
      const fullDelta = gcmTagDelta(h, zeroAad, parsed.headerHash, chunkSize)
      const lastDelta = gcmTagDelta(h, zeroAad, parsed.headerHash, lastLength)
      const stride = chunkSize + CHUNK_TAG_LENGTH
      for (let i = 0; i < chunkCount; i++) {
        const delta = i === chunkCount - 1 ? lastDelta : fullDelta
        const tag = tags.subarray(i * CHUNK_TAG_LENGTH, (i + 1) * CHUNK_TAG_LENGTH)
        for (let b = 0; b < CHUNK_TAG_LENGTH; b++)
          tag[b] = (tag[b] as number) ^ (delta[b] as number)
        const length = i === chunkCount - 1 ? lastLength : chunkSize
        await writeAt(target.fh, tag, prefixLength + i * stride + length)
      }
      await writeAt(target.fh, prefix, 0)
      await target.commit()
      target = undefined
      return parsed
    } finally {
      payloadKey.fill(0)
      h.fill(0)
      tags.fill(0)
    }
  } finally {
    await src.close()
    if (target) await target.abort()
  }
}

async function writeAt(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let off = 0
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, position + off)
    off += bytesWritten
  }
}

function inputChanged(chunk: number): InvalidArgumentError {
  return new InvalidArgumentError('input file changed while sealing', { details: { chunk } })
}

/** One thread: reads into two reused buffers (the next read runs while a chunk is encrypted). */
async function sealSequential(
  src: FileHandle,
  out: FileHandle,
  prefix: Uint8Array,
  parsed: ParsedCapsuleHeader,
  payloadKey: Uint8Array,
  onProgress: ((plaintextBytes: number) => void) | undefined,
): Promise<void> {
  const { chunkSize } = parsed.header.payload
  await out.write(prefix)
  const bufs = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)]
  const n = parsed.chunkCount
  let next = readFully(src, bufs[0] as Uint8Array, chunkPlaintextLength(parsed.header, 0), 0)
  let pendingWrite: Promise<unknown> = Promise.resolve()
  let pendingOut: Uint8Array[] = []
  try {
    for (let i = 0; i < n; i++) {
      const len = chunkPlaintextLength(parsed.header, i)
      const got = await next
      if (got !== len) throw inputChanged(i)
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n) {
        next = readFully(
          src,
          bufs[(i + 1) % 2] as Uint8Array,
          chunkPlaintextLength(parsed.header, i + 1),
          (i + 1) * chunkSize,
        )
      }
      const chunk = encryptChunk(payloadKey, parsed.headerHash, i, i === n - 1, [
        buf.subarray(0, len),
      ])
      await pendingWrite
      release(pendingOut)
      pendingOut = chunk
      const sealed = i * chunkSize + len
      pendingWrite = out.writev(chunk).then(() => onProgress?.(sealed))
    }
    await pendingWrite
    release(pendingOut)
  } catch (err) {
    await settled(next, pendingWrite)
    throw err
  }
}

/**
 * Waits for reads and writes still in flight after a failure: once the caller closes the
 * file, a pending read rejects (EBADF) with nothing awaiting it, and Node exits on the
 * unhandled rejection.
 */
async function settled(...pending: Promise<unknown>[]): Promise<void> {
  await Promise.all(pending.map((p) => p.catch(() => {})))
}

/**
 * Opens the capsule file at `input` and writes its plaintext to `output`. The plaintext
 * appears at `output` only if the whole capsule verified (signature, key, every chunk, the
 * plaintext commitment); when `output` is a device such as /dev/null it is written as it goes,
 * and a rejected call means the output must be discarded.
 *
 * Capsules of 32 MiB or more are decrypted and hashed on every core (worker-thread lanes) on
 * machines with two or more cores, when the output takes positional writes; the result and
 * the errors are those of the single-thread path (a chunk that fails is re-read by it, so the
 * error names the first bad chunk exactly as a sequential reader would).
 *
 * @throws the same typed errors as `openCapsule`, and Node's file system errors unchanged.
 * @example
 * ```ts
 * const parsed = await openFile({ input: 'data.capsule', output: 'data.bin', dataKey })
 * ```
 */
export async function openFile(
  options: OpenOptions & FileThreadsOption & { input: string; output: string },
): Promise<ParsedCapsuleHeader> {
  const src = await open(options.input, 'r')
  let target: Target | undefined
  try {
    const parsed = await readHeader(src)
    const { chunkSize, plaintextSize } = parsed.header.payload
    const expectedSize = parsed.payloadOffset + plaintextSize + parsed.chunkCount * CHUNK_TAG_LENGTH
    const lanes = lanesFor(options.threads, plaintextSize)
    // Anything but the exact size (truncated, extended) goes to the single-thread reader,
    // which names the exact fault.
    if (lanes > 0 && (await src.stat()).size === expectedSize) {
      verifyCapsuleHeader(parsed, options.owner === undefined ? {} : { owner: options.owner })
      checkDataKey(parsed, options.dataKey)
      const id = parsed.header.capsuleId
      target = await openTarget(options.output)
      if (await target.positional()) {
        await target.presize(plaintextSize)
        const combiner =
          options.checkCommitment === false
            ? undefined
            : createCommitmentCombiner(deriveCommitmentKey(options.dataKey, id))
        const payloadKey = derivePayloadKey(options.dataKey, id)
        try {
          await runLanes({
            op: 'open',
            inFd: src.fd,
            inBase: parsed.payloadOffset,
            outFd: target.fh.fd,
            outBase: 0,
            key: payloadKey,
            aad: parsed.headerHash,
            chunkSize,
            plaintextSize,
            chunkCount: parsed.chunkCount,
            lanes,
            ...(combiner ? { onLeaf: (leaf: Uint8Array) => combiner.add(leaf) } : {}),
          })
        } catch (err) {
          if (!(err instanceof LaneChunkFailure)) throw err
          // A chunk failed: let the single-thread reader meet it and throw its exact error.
          await target.abort()
          target = await openTarget(options.output)
          await openSequential(src, target.fh, parsed, prepareOpen(parsed, options))
          await target.commit()
          target = undefined
          return parsed
        } finally {
          payloadKey.fill(0)
        }
        if (combiner && !equalBytes(combiner.digest(), parsed.header.payload.plaintextCommitment))
          throw commitmentMismatch()
        await target.commit()
        target = undefined
        return parsed
      }
    }
    const opener = prepareOpen(parsed, options)
    target ??= await openTarget(options.output)
    await openSequential(src, target.fh, parsed, opener)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    await src.close()
    if (target) await target.abort()
  }
}

/** Reads and parses the preamble, header and signature at the start of a capsule file. */
async function readHeader(src: FileHandle): Promise<ParsedCapsuleHeader> {
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
  return parseCapsuleHeader(concatBytes(pre, rest.subarray(0, restLen)))
}

/** One thread: the payload state machine over double-buffered chunk reads. */
async function openSequential(
  src: FileHandle,
  out: FileHandle,
  parsed: ParsedCapsuleHeader,
  opener: PayloadOpener,
): Promise<void> {
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
  try {
    for (let i = 0; i < n; i++) {
      const got = await next
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n && got === size(i))
        next = readFully(src, bufs[(i + 1) % 2] as Uint8Array, size(i + 1), at(i + 1))
      // The opener consumes exactly one chunk per call, so it keeps no reference to `buf`.
      const chunk = opener.write(buf.subarray(0, got))
      if (got < size(i)) opener.end()
      await pendingWrite
      release(pendingOut)
      pendingOut = chunk
      pendingWrite = out.writev(chunk)
    }
    const end = at(n - 1) + size(n - 1)
    const extra = new Uint8Array(1)
    if ((await readFully(src, extra, 1, end)) > 0) {
      // The same count the in-memory open reports, without reading the extra bytes.
      opener.destroy()
      throw trailingData(Math.max(1, (await src.stat()).size - end))
    }
    opener.end()
    await pendingWrite
    release(pendingOut)
  } catch (err) {
    opener.destroy()
    await settled(next, pendingWrite)
    throw err
  }
}

/**
 * Computes the plaintext commitment of a file (the first of the two passes a sealed file
 * needs; see SPEC.md §4.3). Files of 32 MiB or more are hashed on every core (each lane
 * hashes whole chunks); smaller ones on one thread that overlaps the next read with hashing.
 *
 * @param options.chunkSize - the chunk size the capsule will use; default {@link DEFAULT_CHUNK_SIZE}.
 * @param options.threads - see {@link FileThreadsOption}.
 * @throws {InvalidArgumentError} if the file changes size while it is hashed.
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * const header = createCapsuleHeader({ ...fields, capsuleId, dataKey, commitment })
 * ```
 */
export async function commitPlaintextFile(
  path: string,
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  options: FileThreadsOption & {
    chunkSize?: number
    onProgress?: (plaintextBytes: number) => void
  } = {},
): Promise<PlaintextCommitment> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
  // Validates the key, id and chunk size before any file is touched.
  const c = createPlaintextCommitment(dataKey, capsuleId, chunkSize)
  const fh = await open(path, 'r')
  try {
    const { size } = await fh.stat()
    const lanes = lanesFor(options.threads, size)
    if (lanes === 0) return await commitSequential(fh, c, options.onProgress)
    const combiner = createCommitmentCombiner(deriveCommitmentKey(dataKey, capsuleId))
    await runLanes({
      op: 'hash',
      inFd: fh.fd,
      inBase: 0,
      chunkSize,
      plaintextSize: size,
      chunkCount: chunkCountFor(size, chunkSize),
      lanes,
      onLeaf: (leaf) => combiner.add(leaf),
      onChunks: (done) => options.onProgress?.(Math.min(size, done * chunkSize)),
    }).catch((err: unknown) => {
      if (!(err instanceof LaneChunkFailure)) throw err
      throw hashedFileChanged(err.chunk)
    })
    if ((await fh.stat()).size !== size) throw hashedFileChanged()
    return { plaintextSize: size, plaintextCommitment: combiner.digest(), chunkSize }
  } finally {
    await fh.close()
  }
}

function hashedFileChanged(chunk?: number): InvalidArgumentError {
  return new InvalidArgumentError('input file changed while it was hashed', {
    details: chunk === undefined ? {} : { chunk },
  })
}

/** One thread: 1 MiB reads into two reused buffers, the next read running during hashing. */
async function commitSequential(
  fh: FileHandle,
  c: PlaintextCommitter,
  onProgress: ((plaintextBytes: number) => void) | undefined,
): Promise<PlaintextCommitment> {
  const piece = 1024 * 1024
  const bufs = [new Uint8Array(piece), new Uint8Array(piece)]
  let pos = 0
  let next = readFully(fh, bufs[0] as Uint8Array, piece, pos)
  try {
    for (let i = 0; ; i++) {
      const got = await next
      if (got === 0) break
      pos += got
      const buf = bufs[i % 2] as Uint8Array
      // A short read is the end of the file; one more read confirms it (and catches growth).
      next = readFully(fh, bufs[(i + 1) % 2] as Uint8Array, piece, pos)
      c.update(got === piece ? buf : buf.subarray(0, got))
      onProgress?.(pos)
    }
  } catch (err) {
    await settled(next)
    throw err
  }
  return c.digest()
}
