/**
 * The open stage: the capsule file streamed through capsule-core's opener, either into one
 * buffer (the sandboxes that take the payload in memory) or, ADR 0035, into the run's
 * plaintext file on a tmpfs, so the executor's memory stays flat whatever the capsule's size.
 * Either way the opener's commitment check also gives the run measurement's payload digest
 * (ADR 0059).
 */
import { constants } from 'node:fs'
import { type FileHandle, open, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CapsuleIntegrityError,
  CapsuleKeyError,
  CapsuleSignatureError,
  capsuleChunkRange,
  concatBytes,
  DigicapError,
  equalBytes,
  openFileInto,
  type ParsedCapsuleHeader,
  type PayloadOpener,
  prepareOpen,
  type VerifiedCapsuleHeader,
} from '@digicap/capsule-core'
import { KeyReleaseInvalidError, PayloadIntegrityError } from '../errors.ts'
import type { PlaintextFileStamp } from '../sandbox/types.ts'
import { stampOf } from './plaintext-stamp.ts'
import type { RunWorkspace } from './workspace.ts'

/** What the opener needs: the capsule file and the verified header's facts. */
export interface OpenSource {
  /** The fetched (ciphertext) capsule file. */
  readonly path: string
  readonly owner: `0x${string}`
  readonly plaintextSize: number
  /** The verified header, parsed (the loader's). */
  readonly parsed: ParsedCapsuleHeader
  /** The loader's proof of the header signature; without it the open checks it again. */
  readonly verified?: VerifiedCapsuleHeader | undefined
}

/** Linux's tmpfs and ramfs magic numbers (`statfs(2)`): memory-backed, never a disk. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6])

/**
 * The first of `candidates` that is a writable memory file system (tmpfs, ramfs), else
 * undefined: the plaintext file goes only where it cannot reach a disk.
 */
export async function memoryFsRoot(
  candidates: readonly (string | undefined)[],
): Promise<string | undefined> {
  for (const c of candidates) {
    if (!c) continue
    try {
      if (MEMORY_FS.has((await statfs(c)).type)) {
        await (await open(c, constants.O_RDONLY | constants.O_DIRECTORY)).close()
        return c
      }
    } catch {
      // missing or unreadable: try the next one
    }
  }
  return undefined
}

function openFailure(err: unknown): Error {
  if (err instanceof CapsuleKeyError) {
    return new KeyReleaseInvalidError('The released key is not this capsule’s key', { cause: err })
  }
  if (err instanceof CapsuleIntegrityError) {
    return new PayloadIntegrityError('The payload does not match what the owner signed', {
      cause: err,
    })
  }
  if (err instanceof DigicapError) return err
  return new PayloadIntegrityError('Could not open the payload', { cause: err })
}

function sizeError(expected: number, got: number): PayloadIntegrityError {
  return got > expected
    ? new PayloadIntegrityError('The payload is longer than its header says', {
        details: { plaintextSize: expected },
      })
    : new PayloadIntegrityError('The payload is shorter than its header says', {
        details: { plaintextSize: expected, got },
      })
}

/** The open's options: the owner the loader checked, and its proof when there is one. */
function openOptions(src: OpenSource, dataKey: Uint8Array) {
  return {
    dataKey,
    owner: src.owner,
    ...(src.verified === undefined ? {} : { verified: src.verified }),
  }
}

/** Zero plaintext chunks and free their memory now, not at the next collection. */
function release(chunks: readonly Uint8Array[]): void {
  for (const c of chunks) {
    c.fill(0)
    const ab = c.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer }
    if (c.byteOffset === 0 && c.byteLength === ab.byteLength && ab.transfer) ab.transfer(0)
  }
}

/** Reads `len` bytes at `at` into `buf` (fewer only at the end of the file). */
async function readFully(fh: FileHandle, buf: Uint8Array, len: number, at: number) {
  let done = 0
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, at + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/**
 * The into-memory open's loop: the capsule file read chunk by chunk into two fixed buffers
 * (read-ahead), each chunk decrypted and checked by `opener`, its plaintext handed to
 * `consume` while the next chunk decrypts, then zeroed and freed. Returns the payload digest
 * (version 2) the opener computed from the commitment's leaves (ADR 0059): no second pass.
 */
async function openChunks(
  src: OpenSource,
  opener: PayloadOpener,
  input: FileHandle,
  consume: (plain: Uint8Array[]) => Promise<unknown>,
): Promise<Uint8Array> {
  const { parsed } = src
  const { chunkSize, plaintextSize } = parsed.header.payload
  const n = parsed.chunkCount
  // Version 1: each chunk with its tag; version 2: each body alone (its tag is in the table).
  const sizeOf = (i: number) => {
    const { start, end } = capsuleChunkRange(parsed, i)
    return end - start
  }
  const at = (i: number) => capsuleChunkRange(parsed, i).start
  const bufs = [new Uint8Array(chunkSize + 16), new Uint8Array(chunkSize + 16)]
  let size = 0
  let pending: Promise<unknown> = Promise.resolve()
  let pendingChunks: Uint8Array[] = []
  try {
    await checkPrefix(input, parsed)
    if (parsed.bodiesOffset > parsed.payloadOffset) {
      // version 2: the tag table and its padding first, as the opener expects them
      const table = new Uint8Array(parsed.bodiesOffset - parsed.payloadOffset)
      const got = await readFully(input, table, table.byteLength, parsed.payloadOffset)
      opener.write(table.subarray(0, got))
      if (got < table.byteLength) opener.end()
    }
    let next = readFully(input, bufs[0] as Uint8Array, sizeOf(0), at(0))
    for (let i = 0; i < n; i++) {
      const got = await next
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n && got === sizeOf(i)) {
        next = readFully(input, bufs[(i + 1) % 2] as Uint8Array, sizeOf(i + 1), at(i + 1))
      }
      // One whole chunk per call: the opener keeps no reference to `buf`.
      const plain = opener.write(buf.subarray(0, got))
      if (got < sizeOf(i)) opener.end()
      for (const c of plain) size += c.byteLength
      await pending
      release(pendingChunks)
      pendingChunks = plain
      pending = consume(plain)
    }
    opener.end()
    await pending
    if ((await input.stat()).size !== parsed.capsuleLength) {
      throw new PayloadIntegrityError('The capsule file is longer than its header says')
    }
    if (size !== plaintextSize) throw sizeError(plaintextSize, size)
    return opener.payloadDigest()
  } finally {
    await pending.catch(() => {})
    release(pendingChunks)
    for (const b of bufs) b.fill(0)
  }
}

/**
 * The capsule file still holds the header and signature the loader checked: the payload is
 * decrypted under the checked header's hash, but a file whose header changed since is not
 * the capsule that was checked, and is refused as such.
 */
async function checkPrefix(input: FileHandle, parsed: ParsedCapsuleHeader): Promise<void> {
  const signed = concatBytes(parsed.headerBytes, parsed.signature)
  const got = new Uint8Array(signed.byteLength)
  await readFully(input, got, got.byteLength, parsed.payloadOffset - got.byteLength)
  if (!equalBytes(got, signed)) {
    throw new CapsuleSignatureError('The capsule file’s header is not the one checked', {
      details: { reason: 'header-changed-after-check' },
      hint: 'The capsule file was replaced or altered after the loader verified it.',
    })
  }
}

/**
 * Opens the capsule file into `out` (exactly plaintextSize bytes, which the caller tracks for
 * clean-up) and returns the payload digest (ADR 0059).
 */
export async function openPayloadToMemory(
  src: OpenSource,
  out: Uint8Array,
  dataKey: Uint8Array,
): Promise<Uint8Array> {
  let opener: PayloadOpener | undefined
  let input: FileHandle | undefined
  try {
    opener = prepareOpen(src.parsed, openOptions(src, dataKey))
    input = await open(src.path, 'r')
    let off = 0
    return await openChunks(src, opener, input, async (plain) => {
      for (const c of plain) {
        if (off + c.byteLength > out.byteLength) throw sizeError(out.byteLength, off + c.byteLength)
        out.set(c, off)
        off += c.byteLength
      }
    })
  } catch (err) {
    opener?.destroy()
    throw openFailure(err)
  } finally {
    await input?.close()
  }
}

/** The plaintext file the open wrote. */
export interface OpenedPlaintextFile {
  readonly path: string
  readonly size: number
  /** The run measurement's payload digest (version 2) of the file's bytes (ADR 0059). */
  readonly payloadDigest: Uint8Array
  /** The file as the open left it (ADR 0055): the run checks it is still that file. */
  readonly stamp: PlaintextFileStamp
}

/**
 * Opens the payload into a new 0600 file in `dir` (a directory the workspace owns; the file
 * is also tracked, so it is wiped whatever its size, also after a failed open). capsule-core's
 * `openFileInto` does the work `openFile` does, on its worker lanes from 32 MiB on two or more
 * cores (each chunk decrypted, checked and written at its place, every plaintext buffer zeroed
 * before it is freed; memory does not depend on the capsule's size, ADR 0035), and gives the
 * payload digest from the leaves it checks against the commitment (ADR 0059): the data is
 * hashed once. The run's directory, the output and the input files open on the thread pool.
 */
export async function openPayloadToFile(
  src: OpenSource,
  dataKey: Uint8Array,
  p: {
    /** The run's plaintext directory (or its coming creation). */
    readonly dir: string | Promise<string>
    readonly workspace: RunWorkspace
    /** capsule-core's lanes: default one per core from 32 MiB; `1`: this thread only. */
    readonly threads?: number | undefined
  },
): Promise<OpenedPlaintextFile> {
  const output = (async () => {
    const path = join(await p.dir, 'plaintext')
    const fh = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    )
    p.workspace.trackFile(path, { memoryFs: true })
    return { path, fh }
  })()
  const files = Promise.allSettled([output, open(src.path, 'r')])
  try {
    const [o, i] = await files
    // The file system's own errors (no such capsule, no room for the directory) as they are.
    if (o.status === 'rejected') throw new FsFailure(o.reason)
    if (i.status === 'rejected') throw new FsFailure(i.reason)
    const out = o.value.fh
    await checkPrefix(i.value, src.parsed)
    // It checks the signature (not again with the loader's proof) and the key first.
    const payloadDigest = await openFileInto({
      input: i.value,
      output: out,
      parsed: src.parsed,
      ...openOptions(src, dataKey),
      ...(p.threads === undefined ? {} : { threads: p.threads }),
      // The sandbox runs next: a parked lane worker (~18 MiB) would sit in its peak (ADR 0104).
      keepWorkers: false,
    })
    const stamp = await stampOf(out)
    return {
      path: o.value.path,
      size: src.parsed.header.payload.plaintextSize,
      payloadDigest,
      stamp,
    }
  } catch (err) {
    if (err instanceof FsFailure) throw err.cause
    throw openFailure(err)
  } finally {
    const [o, i] = await files
    if (i.status === 'fulfilled') await i.value.close()
    if (o.status === 'fulfilled') await o.value.fh.close()
  }
}

/** A file system error of the open's set-up, rethrown unchanged. */
class FsFailure extends Error {
  constructor(cause: unknown) {
    super('file system', { cause })
  }
}
