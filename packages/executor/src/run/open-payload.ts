/**
 * The open stage: the capsule file streamed through capsule-core's opener, either into one
 * buffer (the sandboxes that take the payload in memory) or, ADR 0035, into the run's
 * plaintext file on a tmpfs, hashed on the way, so the executor's memory stays flat whatever
 * the capsule's size.
 */
import { constants, createReadStream } from 'node:fs'
import { type FileHandle, open, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  CapsuleIntegrityError,
  CapsuleKeyError,
  DigicapError,
  openNodeStream,
  type ParsedCapsuleHeader,
  type PayloadOpener,
  prepareOpen,
  type VerifiedCapsuleHeader,
} from '@digicap/capsule-core'
import { KeyReleaseInvalidError, PayloadIntegrityError } from '../errors.ts'
import type { PlaintextFileStamp } from '../sandbox/types.ts'
import { release } from './hash/data-range-hasher.ts'
import { type PlaintextHasher, plaintextHasher } from './hash/plaintext-hasher.ts'
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

/** Streams the capsule file through the opener into `out` (exactly plaintextSize bytes). */
export async function openPayloadToMemory(
  src: OpenSource,
  out: Uint8Array,
  dataKey: Uint8Array,
): Promise<void> {
  try {
    let off = 0
    await pipeline(
      createReadStream(src.path),
      openNodeStream(openOptions(src, dataKey)),
      new Writable({
        write(chunk: Uint8Array, _enc, done) {
          if (off + chunk.byteLength > out.byteLength) {
            chunk.fill(0)
            done(sizeError(out.byteLength, off + chunk.byteLength))
            return
          }
          out.set(chunk, off)
          off += chunk.byteLength
          chunk.fill(0)
          done()
        },
      }),
    )
    if (off !== out.byteLength) throw sizeError(out.byteLength, off)
  } catch (err) {
    throw openFailure(err)
  }
}

/** The plaintext file the open wrote, and its data's range and digest. */
export interface OpenedPlaintextFile {
  readonly path: string
  readonly size: number
  /** Where the data lies: the whole file, or a bundle's data part (undefined: not a bundle). */
  readonly range: { readonly start: number; readonly size: number } | undefined
  /** SHA-256 of the bytes in `range`. */
  readonly sha256: Uint8Array
  /** Where the data was hashed (ADR 0049). */
  readonly hashedIn: 'thread' | 'worker'
  /** The file as the open left it (ADR 0055): the run checks it is still that file. */
  readonly stamp: PlaintextFileStamp
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
 * Opens the payload chunk by chunk into a new 0600 file in `dir` (a directory the workspace
 * owns; the file is also tracked, so it is wiped whatever its size), hashing the data range on
 * the way: the whole plaintext, or with `bundle` the bundle's data. The capsule is read with
 * two fixed buffers, one chunk each (read-ahead), and each chunk's plaintext is zeroed and
 * freed once written and hashed: the memory used does not depend on the capsule's size
 * (ADR 0035). The hashing runs on a worker for large payloads (ADR 0049), and the output and
 * input files open on the thread pool while this thread checks the header and the key.
 */
export async function openPayloadToFile(
  src: OpenSource,
  dataKey: Uint8Array,
  p: {
    /** The run's plaintext directory (or its coming creation). */
    readonly dir: string | Promise<string>
    readonly bundle: boolean
    readonly workspace: RunWorkspace
    /** Where the data range is hashed; default `auto` (a worker from 32 MiB on 2+ cores). */
    readonly hashIn?: 'thread' | 'worker' | 'auto' | undefined
  },
): Promise<OpenedPlaintextFile> {
  const { parsed } = src
  const { chunkSize, plaintextSize } = parsed.header.payload
  const n = parsed.chunkCount
  const sizeOf = (i: number) => (i < n - 1 ? chunkSize : plaintextSize - (n - 1) * chunkSize) + 16
  const at = (i: number) => parsed.payloadOffset + i * (chunkSize + 16)
  const hasher = plaintextHasher(p.bundle, plaintextSize, p.hashIn)
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
  let size = 0
  let opener: PayloadOpener | undefined
  let pending: Promise<unknown> = Promise.resolve()
  let pendingChunks: Uint8Array[] = []
  let path = ''
  let digest: Awaited<ReturnType<PlaintextHasher['finish']>>
  let stamp: PlaintextFileStamp
  try {
    opener = prepareOpen(parsed, openOptions(src, dataKey))
    const [o, i] = await files
    // The file system's own errors (no such capsule, no room for the directory) as they are.
    if (o.status === 'rejected') throw new FsFailure(o.reason)
    if (i.status === 'rejected') throw new FsFailure(i.reason)
    const out = o.value.fh
    const input = i.value
    path = o.value.path
    const bufs = [new Uint8Array(chunkSize + 16), new Uint8Array(chunkSize + 16)]
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
      await hasher.take(pendingChunks)
      pendingChunks = plain
      pending = out.writev(plain)
    }
    opener.end()
    await pending
    await hasher.take(pendingChunks)
    pendingChunks = []
    for (const b of bufs) b.fill(0)
    if ((await input.stat()).size !== at(n - 1) + sizeOf(n - 1)) {
      throw new PayloadIntegrityError('The capsule file is longer than its header says')
    }
    if (size !== plaintextSize) throw sizeError(plaintextSize, size)
    digest = await hasher.finish()
    stamp = await stampOf(out)
  } catch (err) {
    opener?.destroy()
    await pending.catch(() => {})
    release(pendingChunks)
    await hasher.abort()
    if (err instanceof FsFailure) throw err.cause
    throw openFailure(err)
  } finally {
    const [o, i] = await files
    if (i.status === 'fulfilled') await i.value.close()
    if (o.status === 'fulfilled') await o.value.fh.close()
  }
  return { path, size, ...digest, hashedIn: hasher.where, stamp }
}

/** A file system error of the open's set-up, rethrown unchanged. */
class FsFailure extends Error {
  constructor(cause: unknown) {
    super('file system', { cause })
  }
}
