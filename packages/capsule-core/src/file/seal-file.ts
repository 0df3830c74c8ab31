/** `sealFile`: a capsule from a file whose header is made in advance (lanes or one thread). */
import { createHash } from 'node:crypto'
import type { BigIntStats } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { prepareSeal, type SealParameters } from '../capsule.ts'
import { equalBytes } from '../encoding/bytes.ts'
import { InvalidArgumentError } from '../errors.ts'
import { createCiphertextCommitmentCombiner, createCommitmentCombiner } from '../keys.ts'
import { chunkPlaintextLength, type ParsedCapsuleHeader } from '../parse.ts'
import { encryptChunk } from '../payload.ts'
import {
  openRegularFile,
  openTarget,
  readFully,
  release,
  SEAL_INPUT_HINT,
  settled,
  type Target,
} from './io.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'

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
 * The file must not change while it is sealed: its size, mtime and ctime (fstat) are compared
 * before the first chunk is read and after the last (before the last chunk is written), and a
 * change is `INVALID_ARGUMENT` ("input file changed while sealing", `details.changed`); see
 * `checkInputUnchanged` for what that cannot see.
 *
 * @throws {InvalidArgumentError} if the file size differs from the header, the file changes
 *   while it is sealed, or the key or signature do not match.
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
  const src = await openRegularFile(params.input, 'input', SEAL_INPUT_HINT)
  let target: Target | undefined
  try {
    const before = await src.stat({ bigint: true })
    const size = Number(before.size)
    if (size !== plaintextSize) {
      throw new InvalidArgumentError('input file size differs from header.payload.plaintextSize', {
        details: { size, plaintextSize },
      })
    }
    target = await openTarget(params.output)
    // The file is read once, against a commitment made before: a same-size edit while it is
    // read would give a signed capsule that never opens. Its fstat must not move meanwhile.
    await writeSealed(src, target, prefix, parsed, payloadKey, {
      ...params,
      beforeLastChunk: () => checkInputUnchanged(src, before, parsed.chunkCount - 1),
    })
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
 * Checks, during the encrypt pass, that the bytes sealed are the bytes committed to: the
 * leaves (SHA-256 of each plaintext chunk) are combined again under the commitment key and
 * compared with the header's commitment before the last chunk is written.
 */
interface LeafCheck {
  add(leaf: Uint8Array): void
  /** @throws {InvalidArgumentError} (`inputChanged`) when the leaves do not combine to the header's commitment. */
  verify(): void
}

function leafCheck(
  commitmentKey: Uint8Array | 'ciphertext',
  parsed: ParsedCapsuleHeader,
): LeafCheck {
  const { chunkSize, plaintextSize } = parsed.header.payload
  // version 2: the bodies the lanes write must make the header's commitment (SPEC.md §11.3)
  const combiner =
    commitmentKey === 'ciphertext'
      ? createCiphertextCommitmentCombiner(chunkSize, plaintextSize)
      : createCommitmentCombiner(commitmentKey)
  return {
    add: (leaf) => combiner.add(leaf),
    verify() {
      if (!equalBytes(combiner.digest(), parsed.header.payload.contentCommitment)) {
        throw inputChanged(parsed.chunkCount)
      }
    },
  }
}

/** The encrypt pass of a header given in advance: lanes when they pay, else one thread. */
export async function writeSealed(
  src: FileHandle,
  target: Target,
  prefix: Uint8Array,
  parsed: ParsedCapsuleHeader,
  payloadKey: Uint8Array,
  params: FileThreadsOption & {
    onProgress?: ((plaintextBytes: number) => void) | undefined
    /**
     * The commitment key: when given, the plaintext is hashed again as it is sealed and must
     * match the header's commitment (a file read twice may have changed in between, keeping
     * its size), else `inputChanged` — before the last chunk reaches a pipe.
     */
    commitmentKey?: Uint8Array | undefined
    /**
     * Called once every chunk is read and before the last one is written (before a pipe's
     * reader gets a whole capsule): throws to stop the seal (`checkInputUnchanged`).
     */
    beforeLastChunk?: (() => Promise<void>) | undefined
  },
): Promise<void> {
  const { chunkSize, plaintextSize } = parsed.header.payload
  // Version 2: the bodies are hashed as they are sealed (one pass, in the lanes) and must make
  // the header's commitment, or nothing is renamed into place (a header made for other bytes).
  const check =
    parsed.header.version !== 1
      ? leafCheck('ciphertext', parsed)
      : params.commitmentKey && leafCheck(params.commitmentKey, parsed)
  const lanes = lanesFor(params.threads, plaintextSize)
  const v1 = parsed.header.version === 1
  if (!v1) {
    if (params.commitmentKey) {
      // only version 1's two-pass seal re-hashes the plaintext against its keyed commitment
      throw new InvalidArgumentError('a version 2 seal takes no commitment key', {
        hint: 'Seal version 2 files in one pass (commitAndSealFile), or against an fstat check (sealFile).',
      })
    }
    if (!(await target.positional())) {
      throw new InvalidArgumentError('a version 2 capsule is sealed into a regular file', {
        hint: 'Its tag table sits before the bodies: give a file path, or make a version 1 header.',
      })
    }
  }
  // Version 2 always takes the lanes (on the calling thread alone for a small file): each body
  // at its place, each tag into the table before them, the padding the presized file's zeros.
  if (!v1 || (lanes > 0 && (await target.positional()))) {
    await target.presize(parsed.capsuleLength)
    await target.fh.write(prefix, 0, prefix.length, 0)
    await runLanes({
      op: 'seal',
      inFd: src.fd,
      inBase: 0,
      outFd: target.fh.fd,
      outBase: parsed.bodiesOffset,
      ...(v1 ? {} : { tagBase: parsed.payloadOffset }),
      key: payloadKey,
      aad: parsed.headerHash,
      chunkSize,
      plaintextSize,
      chunkCount: parsed.chunkCount,
      lanes: Math.max(1, lanes),
      keepWorkers: params.keepWorkers,
      ...(check === undefined
        ? {}
        : v1
          ? { onLeaf: (leaf: Uint8Array) => check.add(leaf) }
          : { onCipherLeaf: (leaf: Uint8Array) => check.add(leaf) }),
      onChunks: (done) => params.onProgress?.(Math.min(plaintextSize, done * chunkSize)),
    }).catch((err: unknown) => {
      if (!(err instanceof LaneChunkFailure)) throw err
      throw inputChanged(err.chunk)
    })
    // A positional output is a temp file: the caller aborts it when this throws.
    await params.beforeLastChunk?.()
    check?.verify()
  } else {
    await sealSequential(
      src,
      target.fh,
      prefix,
      parsed,
      payloadKey,
      params.onProgress,
      check,
      params.beforeLastChunk,
    )
  }
}

export function inputChanged(
  chunk: number,
  changed?: readonly string[] | undefined,
): InvalidArgumentError {
  return new InvalidArgumentError('input file changed while sealing', {
    details: changed === undefined ? { chunk } : { chunk, changed: changed.join(',') },
    hint: 'Seal a file nothing writes to meanwhile (a copy or a snapshot), then seal again.',
  })
}

/**
 * Throws `inputChanged` when the open file's fstat differs from `before` in size, mtime or ctime
 * (nanoseconds). Any write through the file system moves both times (ctime cannot be set back
 * by a user, unlike mtime), so this catches a same-size edit made while the file was read,
 * without hashing it again. It cannot catch: a write that lands within one tick of the file
 * system's clock (Linux stamps with a coarse clock, ~1–10 ms; 1–2 s on ext3/FAT) of the file's
 * last change before the seal; a write through a shared mmap whose times are stamped later
 * (at write-back or `msync`); a file system that does not stamp writes it did not see (a
 * network or FUSE mount with cached attributes); a change made before the seal began (the
 * header was made in advance: only hashing the file again would tell). A file replaced by
 * rename is not a change: the open descriptor still reads the old inode.
 */
export async function checkInputUnchanged(
  src: FileHandle,
  before: BigIntStats,
  chunk: number,
): Promise<void> {
  const after = await src.stat({ bigint: true })
  const changed = (['size', 'mtimeNs', 'ctimeNs'] as const).filter((k) => after[k] !== before[k])
  if (changed.length > 0) throw inputChanged(chunk, changed)
}

/** One thread: reads into two reused buffers (the next read runs while a chunk is encrypted). */
export async function sealSequential(
  src: FileHandle,
  out: FileHandle,
  prefix: Uint8Array,
  parsed: ParsedCapsuleHeader,
  payloadKey: Uint8Array,
  onProgress: ((plaintextBytes: number) => void) | undefined,
  check?: LeafCheck | undefined,
  beforeLastChunk?: (() => Promise<void>) | undefined,
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
      if (check) {
        check.add(new Uint8Array(createHash('sha256').update(buf.subarray(0, len)).digest()))
        // Before the last chunk is written: a pipe's reader never gets a whole capsule that
        // does not open.
        if (i === n - 1) check.verify()
      }
      if (i === n - 1) await beforeLastChunk?.()
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
