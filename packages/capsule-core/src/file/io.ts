/** File I/O the file helpers share: full reads, full positional writes, atomic outputs. */
import { randomBytes } from 'node:crypto'
import { writeSync } from 'node:fs'
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { InvalidArgumentError } from '../errors.ts'

/** Frees a buffer's memory now instead of at the next garbage collection. */
export function release(buffers: Uint8Array[]): void {
  for (const b of buffers) {
    // Only buffers that own their whole ArrayBuffer (cipher outputs) are released.
    const ab = b.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer }
    if (b.byteOffset === 0 && b.byteLength === ab.byteLength && typeof ab.transfer === 'function')
      ab.transfer(0)
  }
}

/** What to do with a pipe or socket one wanted to seal. */
export const SEAL_INPUT_HINT = 'Seal pipes and sockets with sealNodeStream or sealStream.'

/**
 * Opens a file for reading and refuses anything but a regular file. The open does not block
 * (`O_NONBLOCK`: a FIFO with no writer would hold a thread-pool thread until one appears); the
 * type is checked on the descriptor, so a name swapped in between cannot slip through.
 * @throws {InvalidArgumentError} naming `field` for a FIFO, socket, device or directory.
 */
export async function openRegularFile(
  path: string,
  field: string,
  hint: string,
): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0))
  try {
    const info = await fh.stat()
    if (!info.isFile()) {
      throw new InvalidArgumentError(`${field} must be a regular file`, {
        details: { [field]: path },
        hint,
      })
    }
    return fh
  } catch (err) {
    await fh.close()
    throw err
  }
}

export async function readFully(
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

export interface Target {
  fh: FileHandle
  /** Where the bytes written so far can be read: the temp file, or the output itself. */
  writtenPath: string
  /** A regular file (written to a temp file, renamed on commit). */
  regular: boolean
  /** Whether the output takes positional writes (regular files, /dev/null; not pipes). */
  positional(): Promise<boolean>
  /** Sets a regular file's final size up front, so out-of-order writes never extend it. */
  presize(size: number): Promise<void>
  /**
   * Flushes the file and renames it into place. `alongside` runs while the flush waits on the
   * disk (e.g. an IPFS add reading the bytes back); nothing is renamed unless both succeed.
   */
  commit(alongside?: () => Promise<void>): Promise<void>
  /**
   * Starts the disk writing what is written so far (an `fdatasync` on the thread pool, at
   * most one in flight; a no-op for other outputs), so the final flush has less left to
   * wait for. Its failure is thrown by `commit`.
   */
  writeBack(): void
  abort(): Promise<void>
}

/** Opens `path` for writing: via a temp file + rename for regular files, directly otherwise (e.g. /dev/null). */
export async function openTarget(path: string): Promise<Target> {
  const existing = await stat(path).catch(() => undefined)
  if (existing && !existing.isFile()) {
    const fh = await open(path, 'w')
    return {
      fh,
      writtenPath: path,
      regular: false,
      positional: () =>
        fh.write(new Uint8Array(0), 0, 0, 0).then(
          () => existing.isCharacterDevice() || existing.isBlockDevice(),
          () => false,
        ),
      presize: async () => {},
      writeBack: () => {},
      async commit(alongside) {
        await alongside?.()
        await fh.close()
      },
      abort: () => fh.close(),
    }
  }
  // The writer's pid in the name: a folder's owner can tell a killed writer's leftover from a
  // running one's (`@digicap/cli-kit`'s removeStaleTemps).
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.partial`,
  )
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  // Below the kernel's dirty threshold (10 % of RAM by default) nothing reaches the disk
  // before the final fsync, which then waits for the whole file: early syncs overlap the disk
  // with the sealing (a 1 GiB capsule's final flush was half of its seal time).
  let inFlight: Promise<void> | undefined
  let writeBackError: unknown
  const writtenBack = async () => {
    await inFlight
    if (writeBackError !== undefined) throw writeBackError
  }
  return {
    fh,
    writtenPath: tmp,
    regular: true,
    positional: async () => true,
    presize: (size) => fh.truncate(size),
    writeBack() {
      if (inFlight) return
      inFlight = fh.datasync().then(
        () => {
          inFlight = undefined
        },
        (err: unknown) => {
          writeBackError ??= err
          inFlight = undefined
        },
      )
    },
    async commit(alongside) {
      // Both settle before the caller may close the file (abort): no flush left in flight.
      await allSettled(
        writtenBack().then(() => fh.sync()),
        alongside && Promise.resolve().then(alongside),
      )
      await fh.close()
      await rename(tmp, path)
    },
    async abort() {
      await inFlight
      await fh.close().catch(() => {})
      await unlink(tmp).catch(() => {})
    },
  }
}

export async function writeAt(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let off = 0
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, position + off)
    off += bytesWritten
  }
}

/** A full positional write on the calling thread (small writes into the page cache). */
export function writeAtSync(fd: number, bytes: Uint8Array, position: number): void {
  let off = 0
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, position + off)
}

/** Waits for every promise, then throws the first rejection (if any). */
async function allSettled(...pending: (Promise<unknown> | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(pending)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}

/**
 * Waits for reads and writes still in flight after a failure: once the caller closes the
 * file, a pending read rejects (EBADF) with nothing awaiting it, and Node exits on the
 * unhandled rejection.
 */
export async function settled(...pending: Promise<unknown>[]): Promise<void> {
  await Promise.all(pending.map((p) => p.catch(() => {})))
}
