/**
 * `/input` backed by the run's plaintext file on the host's tmpfs (ADR 0035; internal, worker
 * side): a read-only inode over one descriptor the worker opened, read in the module's own
 * chunk sizes straight into its linear memory (`readInto`), so no copy of the whole payload
 * exists anywhere. The descriptor is the only host path in reach, opened read-only by the host
 * code, never by the module; a terminated worker's descriptors are closed by Node
 * (`trackUnmanagedFds`).
 */
import { readSync } from 'node:fs'
import { Fd, Inode, wasi } from '@bjorn3/browser_wasi_shim'

type Stat = InstanceType<typeof wasi.Filestat>

/** The read-only `/input` inode: `size` bytes of descriptor `fd`, from `offset`. */
export class HostInputFile extends Inode {
  readonly fd: number
  readonly offset: number
  readonly size: number
  constructor(fd: number, offset: number, size: number) {
    super()
    this.fd = fd
    this.offset = offset
    this.size = size
  }
  path_open(oflags: number, rightsBase: bigint, _fdFlags: number) {
    const wantsWrite = (rightsBase & BigInt(wasi.RIGHTS_FD_WRITE)) === BigInt(wasi.RIGHTS_FD_WRITE)
    if (wantsWrite || (oflags & wasi.OFLAGS_TRUNC) === wasi.OFLAGS_TRUNC) {
      return { ret: wasi.ERRNO_PERM, fd_obj: null }
    }
    return { ret: wasi.ERRNO_SUCCESS, fd_obj: new OpenHostInput(this) }
  }
  stat(): Stat {
    return new wasi.Filestat(this.ino, wasi.FILETYPE_REGULAR_FILE, BigInt(this.size))
  }
}

/** An open `/input`: its own position; reads, seeks and stats; every write is EBADF. */
export class OpenHostInput extends Fd {
  readonly file: HostInputFile
  pos = 0
  constructor(file: HostInputFile) {
    super()
    this.file = file
  }
  /** Read up to `into.byteLength` bytes at `at` (relative to the data) into `into`. */
  readInto(into: Uint8Array, at: number): number {
    const n = Math.max(0, Math.min(into.byteLength, this.file.size - at))
    let done = 0
    while (done < n) {
      const got = readSync(this.file.fd, into, done, n - done, this.file.offset + at + done)
      if (got === 0) break // the file is the host's; it is never shorter than its size
      done += got
    }
    return done
  }
  override fd_read(size: number) {
    const data = new Uint8Array(Math.min(size, Math.max(0, this.file.size - this.pos)))
    this.pos += this.readInto(data, this.pos)
    return { ret: 0, data }
  }
  override fd_pread(size: number, offset: bigint) {
    const data = new Uint8Array(Math.min(size, Math.max(0, this.file.size - Number(offset))))
    this.readInto(data, Number(offset))
    return { ret: 0, data }
  }
  override fd_seek(offset: bigint, whence: number) {
    const base =
      whence === wasi.WHENCE_SET
        ? 0n
        : whence === wasi.WHENCE_CUR
          ? BigInt(this.pos)
          : whence === wasi.WHENCE_END
            ? BigInt(this.file.size)
            : undefined
    if (base === undefined || base + offset < 0n) return { ret: wasi.ERRNO_INVAL, offset: 0n }
    const next = base + offset
    if (next > BigInt(Number.MAX_SAFE_INTEGER)) return { ret: wasi.ERRNO_INVAL, offset: 0n }
    this.pos = Number(next)
    return { ret: 0, offset: next }
  }
  override fd_tell() {
    return { ret: 0, offset: BigInt(this.pos) }
  }
  override fd_fdstat_get() {
    return { ret: 0, fdstat: new wasi.Fdstat(wasi.FILETYPE_REGULAR_FILE, 0) }
  }
  override fd_filestat_get() {
    return { ret: 0, filestat: this.file.stat() }
  }
  override fd_write() {
    return { ret: wasi.ERRNO_BADF, nwritten: 0 }
  }
  override fd_pwrite() {
    return { ret: wasi.ERRNO_BADF, nwritten: 0 }
  }
  override fd_allocate() {
    return wasi.ERRNO_BADF
  }
  override fd_filestat_set_size() {
    return wasi.ERRNO_BADF
  }
}
