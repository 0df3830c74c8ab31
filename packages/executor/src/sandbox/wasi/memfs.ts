/**
 * The WASI module's file system, all in this worker's memory (internal, worker side): a
 * preopened `/` holding `/input` (a view of the host's shared input buffer, so the host
 * can zero it whatever happens to this thread) and an empty `/out/`, plus stdin (empty),
 * stdout and stderr sinks. No host path is ever opened: plaintext never reaches a disk.
 *
 * Built on @bjorn3/browser_wasi_shim's in-memory classes, with three changes made here
 * (in this worker's copy of the shim only): file writes grow their buffer geometrically
 * (the shim copies the whole file on every append) and zero the buffer they leave; growth
 * past the written bytes (a write at a far offset) is metered like a write; reads hand out
 * views instead of copies.
 */
import {
  ConsoleStdout,
  Directory,
  File,
  type Inode,
  OpenFile,
  PreopenDirectory,
} from '@bjorn3/browser_wasi_shim'
import { HostInputFile } from './host-file.ts'
import type { WriteMeter } from './meter.ts'

const ERRNO_BADF = 8

/** The meter of the job this worker runs; set once per (single-job) worker. */
let growthMeter: WriteMeter | undefined

/** Make `file` `end` bytes long (zero-filled), reusing spare capacity or doubling it. */
function reserve(file: File, end: number): void {
  const size = file.data.byteLength
  if (end <= size) return
  growthMeter?.account(-1, end - size)
  const backing = file.data.buffer
  if (file.data.byteOffset === 0 && end <= backing.byteLength) {
    file.data = new Uint8Array(backing, 0, end)
    return
  }
  const next = new Uint8Array(Math.max(end, Math.min(size * 2, end + 64 * 1024 * 1024)))
  next.set(file.data)
  file.data.fill(0)
  file.data = next.subarray(0, end)
}

type Written = { ret: number; nwritten: number }
type Read = { ret: number; data: Uint8Array }
const proto = OpenFile.prototype as unknown as {
  fd_write(this: OpenFile, data: Uint8Array): Written
  fd_pwrite(this: OpenFile, data: Uint8Array, offset: bigint): Written
  fd_read(this: OpenFile, size: number): Read
  fd_pread(this: OpenFile, size: number, offset: bigint): Read
}
// Reads hand out a view, not a copy (the shim copies it into linear memory at once): no
// stray plaintext copies on the heap, and 10-40× less time than `slice` on large reads.
const view = (file: File, from: number, size: number) =>
  file.data.subarray(
    Math.min(from, file.data.byteLength),
    Math.min(from + size, file.data.byteLength),
  )
proto.fd_read = function (size) {
  const data = view(this.file, Number(this.file_pos), size)
  this.file_pos += BigInt(data.byteLength)
  return { ret: 0, data }
}
proto.fd_pread = function (size, offset) {
  return { ret: 0, data: view(this.file, Number(offset), size) }
}
proto.fd_write = function (data) {
  if (this.file.readonly) return { ret: ERRNO_BADF, nwritten: 0 }
  const pos = Number(this.file_pos)
  reserve(this.file, pos + data.byteLength)
  this.file.data.set(data, pos)
  this.file_pos += BigInt(data.byteLength)
  return { ret: 0, nwritten: data.byteLength }
}
proto.fd_pwrite = function (data, offset) {
  if (this.file.readonly) return { ret: ERRNO_BADF, nwritten: 0 }
  reserve(this.file, Number(offset) + data.byteLength)
  this.file.data.set(data, Number(offset))
  return { ret: 0, nwritten: data.byteLength }
}

/** A byte sink that keeps at most `max` bytes in one doubling buffer. */
export class Sink {
  #buf = new Uint8Array(0)
  #len = 0
  readonly #max: number
  constructor(max: number) {
    this.#max = max
  }
  write(bytes: Uint8Array): void {
    const n = Math.min(bytes.byteLength, this.#max - this.#len)
    if (n > 0) {
      if (this.#len + n > this.#buf.byteLength) {
        const next = new Uint8Array(
          Math.min(this.#max, Math.max(4096, this.#buf.byteLength * 2, this.#len + n)),
        )
        next.set(this.#buf.subarray(0, this.#len))
        this.#buf.fill(0)
        this.#buf = next
      }
      this.#buf.set(bytes.subarray(0, n), this.#len)
      this.#len += n
    }
    bytes.fill(0)
  }
  /** A fresh copy of the bytes kept. */
  take(): Uint8Array<ArrayBuffer> {
    return this.#buf.slice(0, this.#len)
  }
  /** Zero the buffer; returns the bytes zeroed. */
  wipe(): number {
    this.#buf.fill(0)
    return this.#buf.byteLength
  }
}

export interface MemFs {
  /** Descriptors 0–3: stdin, stdout, stderr, the preopened `/`. */
  readonly fds: [OpenFile, ConsoleStdout, ConsoleStdout, PreopenDirectory]
  readonly stdout: Sink
  readonly stderr: Sink
  /** Zero every file and sink; returns the bytes zeroed. */
  wipe(): number
}

export function memFs(p: {
  readonly input: SharedArrayBuffer
  /** `/input` from the run's plaintext file instead (ADR 0035): descriptor, data offset, size. */
  readonly inputFile?: { readonly fd: number; readonly offset: number; readonly size: number }
  readonly outputLimitBytes: number
  readonly stderrLimitBytes: number
  readonly meter: WriteMeter
}): MemFs {
  growthMeter = p.meter
  const stdout = new Sink(p.outputLimitBytes)
  const stderr = new Sink(p.stderrLimitBytes)
  const root = new PreopenDirectory(
    '/',
    new Map<string, Inode>([
      [
        'input',
        p.inputFile
          ? new HostInputFile(p.inputFile.fd, p.inputFile.offset, p.inputFile.size)
          : new File(p.input),
      ],
      ['out', new Directory(new Map())],
    ]),
  )
  return {
    fds: [
      new OpenFile(new File(new Uint8Array(0), { readonly: true })),
      new ConsoleStdout((b) => stdout.write(b)),
      new ConsoleStdout((b) => stderr.write(b)),
      root,
    ],
    stdout,
    stderr,
    wipe() {
      return stdout.wipe() + stderr.wipe() + wipeTree(root.dir)
    },
  }
}

function wipeTree(dir: Directory): number {
  let n = 0
  for (const entry of dir.contents.values()) {
    if (entry instanceof Directory) n += wipeTree(entry)
    else if (entry instanceof File) {
      const all = new Uint8Array(entry.data.buffer)
      all.fill(0)
      n += all.byteLength
    }
  }
  return n
}
