/** `openFile`: a capsule file to its plaintext, which appears only once all of it verified. */
import type { FileHandle } from 'node:fs/promises'
import { createPayloadDigestCombiner } from '../bundle/payload-digest.ts'
import { checkDataKey, type OpenOptions, prepareOpen } from '../capsule.ts'
import { concatBytes, equalBytes } from '../encoding/bytes.ts'
import { CapsuleTruncatedError } from '../errors.ts'
import { CAPSULE_PREAMBLE_LENGTH, CAPSULE_SIGNATURE_LENGTH, CHUNK_TAG_LENGTH } from '../header.ts'
import { contentCommitmentCombiner, derivePayloadKey } from '../keys.ts'
import {
  checkPreamble,
  chunkOffsets,
  chunkPlaintextLength,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from '../parse.ts'
import {
  commitmentMismatch,
  nonZeroPadding,
  type PayloadOpener,
  payloadCommitmentMismatch,
  trailingData,
} from '../payload.ts'
import { verifyOnce } from '../verified-header.ts'
import { openRegularFile, openTarget, readFully, release, settled, type Target } from './io.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'
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
  const src = await openRegularFile(
    options.input,
    'input',
    'Open pipes and sockets with openNodeStream or openStream.',
  )
  let target: Target | undefined
  try {
    const parsed = await readHeader(src)
    const lanes = await lanesForFile(src, parsed, options.threads)
    if (lanes > 0) {
      // one signature check for both readers (a failed chunk goes to the sequential one)
      const verified = verifyOnce(parsed, options)
      checkDataKey(parsed, options.dataKey)
      target = await openTarget(options.output)
      if (await target.positional()) {
        await target.presize(parsed.header.payload.plaintextSize)
        const pass = await openOnLanes(src, target.fh, parsed, options, lanes, options.keepWorkers)
        if (pass === 'chunk-failed') {
          // A chunk failed: let the single-thread reader meet it and throw its exact error.
          await target.abort()
          target = await openTarget(options.output)
          await openSequential(
            src,
            target.fh,
            parsed,
            prepareOpen(parsed, { ...options, verified }),
          )
        }
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

/**
 * Opens the payload of the capsule file `input` (its header already parsed: `parsed`) into
 * `output`, a file its caller opened and owns (made, tracked, wiped and removed by it): a new,
 * empty file (the lanes write each chunk at its offset from 0, the one-thread path in order from
 * the handle's position), and returns the payload digest (version 2,
 * docs/bundle.md §7) from the commitment's leaves. On worker lanes like {@link openFile} from
 * {@link PARALLEL_FILE_MIN_BYTES} on two or more cores, else on the calling thread; a chunk that
 * fails on a lane is re-read on the calling thread for its exact error. Every plaintext buffer
 * is zeroed before it is freed. A rejected call leaves `output` holding unverified plaintext:
 * the caller wipes it. The commitment is always checked (the option is not taken).
 *
 * @throws the typed errors of {@link openFile}, and Node's file system errors unchanged.
 * @example
 * ```ts
 * const payloadDigest = await openFileInto({ input, output, parsed, dataKey, verified })
 * ```
 */
export async function openFileInto(
  options: Omit<OpenOptions, 'checkCommitment'> &
    FileThreadsOption & { input: FileHandle; output: FileHandle; parsed: ParsedCapsuleHeader },
): Promise<Uint8Array> {
  const { input, output, parsed } = options
  const opts = { ...options, checkCommitment: true }
  const lanes = await lanesForFile(input, parsed, options.threads)
  let verified = options.verified
  if (lanes > 0) {
    verified = verifyOnce(parsed, opts)
    checkDataKey(parsed, options.dataKey)
    const pass = await openOnLanes(input, output, parsed, opts, lanes, options.keepWorkers)
    if (pass !== 'chunk-failed') return pass as Uint8Array
  }
  const opener = prepareOpen(parsed, verified ? { ...opts, verified } : opts)
  await openSequential(input, output, parsed, opener, { zero: true })
  return opener.payloadDigest()
}

/** Lanes for this capsule file: 0 (one thread) unless large enough and exactly its size. */
async function lanesForFile(
  src: FileHandle,
  parsed: ParsedCapsuleHeader,
  threads: number | undefined,
): Promise<number> {
  const lanes = lanesFor(threads, parsed.header.payload.plaintextSize)
  // Anything but the exact size (truncated, extended) goes to the single-thread reader,
  // which names the exact fault.
  return lanes > 0 && (await src.stat()).size === parsed.capsuleLength ? lanes : 0
}

/**
 * The lane pass: every chunk decrypted, authenticated and hashed on `lanes` lanes and
 * written at its place in `out`; then the commitment checked. Returns the payload digest
 * (undefined without the commitment check), or `chunk-failed` for the one-thread reader.
 */
async function openOnLanes(
  src: FileHandle,
  out: FileHandle,
  parsed: ParsedCapsuleHeader,
  options: OpenOptions,
  lanes: number,
  keepWorkers: boolean | undefined,
): Promise<Uint8Array | undefined | 'chunk-failed'> {
  const { chunkSize, plaintextSize } = parsed.header.payload
  const id = parsed.header.capsuleId
  const check = options.checkCommitment !== false
  const v1 = parsed.header.version === 1
  const combiner = check
    ? contentCommitmentCombiner(
        parsed.header.version,
        options.dataKey,
        id,
        chunkSize,
        plaintextSize,
      )
    : undefined
  const payload = check ? createPayloadDigestCombiner(chunkSize, plaintextSize) : undefined
  if (!v1) await checkPadding(src, parsed)
  const payloadKey = derivePayloadKey(options.dataKey, id)
  try {
    await runLanes({
      op: 'open',
      inFd: src.fd,
      inBase: parsed.bodiesOffset,
      ...(v1 ? {} : { tagBase: parsed.payloadOffset }),
      outFd: out.fd,
      outBase: 0,
      key: payloadKey,
      aad: parsed.headerHash,
      chunkSize,
      plaintextSize,
      chunkCount: parsed.chunkCount,
      lanes,
      keepWorkers,
      ...(combiner && v1
        ? {
            onLeaf: (leaf: Uint8Array) => {
              combiner.add(leaf)
              payload?.add(leaf)
            },
          }
        : {}),
      ...(combiner && !v1
        ? {
            onLeaf: (leaf: Uint8Array) => payload?.add(leaf),
            onCipherLeaf: (leaf: Uint8Array) => combiner.add(leaf),
          }
        : {}),
    })
  } catch (err) {
    if (err instanceof LaneChunkFailure) return 'chunk-failed'
    throw err
  } finally {
    payloadKey.fill(0)
  }
  if (combiner && !equalBytes(combiner.digest(), parsed.header.payload.contentCommitment))
    throw v1 ? commitmentMismatch() : payloadCommitmentMismatch()
  return payload?.digest()
}

/** Version 2: the bytes between the tag table and the bodies must be zero (SPEC.md §11.2). */
async function checkPadding(src: FileHandle, parsed: ParsedCapsuleHeader): Promise<void> {
  const start = parsed.payloadOffset + parsed.chunkCount * CHUNK_TAG_LENGTH
  const padding = new Uint8Array(parsed.bodiesOffset - start)
  if (padding.length === 0) return
  await readFully(src, padding, padding.length, start)
  if (padding.some((b) => b !== 0)) throw nonZeroPadding()
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
  /** Zero each plaintext chunk before freeing it (a caller that wipes its output). */
  options: { zero?: boolean } = {},
): Promise<void> {
  const free = (chunks: Uint8Array[]) => {
    if (options.zero) for (const c of chunks) c.fill(0)
    release(chunks)
  }
  const { chunkSize } = parsed.header.payload
  const v1 = parsed.header.version === 1
  // Version 1: each chunk with its tag; version 2: each body alone, its tag in the table.
  const size = (i: number) => chunkPlaintextLength(parsed.header, i) + (v1 ? CHUNK_TAG_LENGTH : 0)
  const at = (i: number) => chunkOffsets(parsed, i).body
  const bufs = [
    new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
    new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
  ]
  const n = parsed.chunkCount
  if (!v1) {
    // The tag table and the padding go first, as a stream reader meets them.
    const table = new Uint8Array(parsed.bodiesOffset - parsed.payloadOffset)
    const got = await readFully(src, table, table.length, parsed.payloadOffset)
    try {
      opener.write(table.subarray(0, got))
      if (got < table.length) opener.end()
    } catch (err) {
      opener.destroy()
      throw err
    }
  }
  let next = readFully(src, bufs[0] as Uint8Array, size(0), at(0))
  let pendingWrite: Promise<unknown> = Promise.resolve()
  let pendingOut: Uint8Array[] = []
  // A chunk decrypted but not yet handed to a write: zeroed too if the write before it (or the
  // end check) fails.
  let unwritten: Uint8Array[] = []
  try {
    for (let i = 0; i < n; i++) {
      const got = await next
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n && got === size(i))
        next = readFully(src, bufs[(i + 1) % 2] as Uint8Array, size(i + 1), at(i + 1))
      // The opener consumes exactly one chunk per call, so it keeps no reference to `buf`.
      const chunk = opener.write(buf.subarray(0, got))
      unwritten = chunk
      if (got < size(i)) opener.end()
      await pendingWrite
      free(pendingOut)
      pendingOut = chunk
      unwritten = []
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
    free(pendingOut)
  } catch (err) {
    opener.destroy()
    await settled(next, pendingWrite)
    free(pendingOut)
    free(unwritten)
    throw err
  } finally {
    if (options.zero) for (const b of bufs) b.fill(0)
  }
}
