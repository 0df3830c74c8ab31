/**
 * Write metering for the WASI host (internal, worker side): every byte the module asks to
 * write, every byte a file grows by, and 4 KiB plus its name's bytes per entry it creates
 * count against the disk limit; stdout bytes also count against the output limit. The module is stopped with a
 * {@link LimitHit} before passing a limit, so the in-memory file system never holds more
 * than the limit, whatever the program does.
 */

/** Thrown out of a WASI call to stop the module; the worker reports which limit. */
export class LimitHit extends Error {
  readonly which: 'output' | 'disk' | 'time'
  constructor(which: 'output' | 'disk' | 'time') {
    super(which)
    this.which = which
  }
}

// biome-ignore lint/suspicious/noExplicitAny: WASI calls take i32/i64 (number | bigint) arguments
export type WasiFn = (...args: any[]) => unknown

export interface WriteMeter {
  /** Count `bytes` written through `fd` (-1: not a stream: file growth, entries). */
  account(fd: number, bytes: number): void
}

export function writeMeter(limits: {
  readonly outputLimitBytes: number
  readonly diskLimitBytes: number
}): WriteMeter {
  let total = 0
  let out = 0
  return {
    account(fd, bytes) {
      total += bytes
      if (fd === 1) out += bytes
      if (out > limits.outputLimitBytes) throw new LimitHit('output')
      if (total > limits.diskLimitBytes) throw new LimitHit('disk')
    },
  }
}

const ENTRY = 4096
const O_CREAT = 1
/** Longest path a call may name, in bytes (Linux's PATH_MAX). */
export const WASI_PATH_MAX = 4096
const ERRNO_NAMETOOLONG = 37

/**
 * The (pointer, length) argument positions of each preview-1 call's paths, and which of them
 * name an entry the call may create (their bytes are stored in the file system).
 */
const PATH_ARGS: Record<string, { lens: number[]; created: number[] }> = {
  path_create_directory: { lens: [2], created: [2] },
  path_filestat_get: { lens: [3], created: [] },
  path_filestat_set_times: { lens: [3], created: [] },
  path_link: { lens: [3, 6], created: [6] },
  path_open: { lens: [3], created: [3] },
  path_readlink: { lens: [2], created: [] },
  path_remove_directory: { lens: [2], created: [] },
  path_rename: { lens: [2, 5], created: [5] },
  // the target (old path) is the link's content, stored too
  path_symlink: { lens: [1, 4], created: [1, 4] },
  path_unlink_file: { lens: [2], created: [] },
}

/**
 * Wrap the WASI imports that write or create: fd_write, fd_pwrite (the iovec sizes),
 * fd_allocate and fd_filestat_set_size (the size asked for), path_open with O_CREAT and
 * the calls that make entries (4 KiB each, plus the bytes of the names they store). Growth
 * past the written bytes (a write at a far offset) is metered by the file system itself (see
 * memfs.ts). Every path call refuses a path over {@link WASI_PATH_MAX} bytes (ENAMETOOLONG)
 * before the shim decodes it: a name's bytes live in the worker's memory like a file's.
 */
export function meterWrites(
  imports: Record<string, WasiFn>,
  memory: () => WebAssembly.Memory,
  meter: WriteMeter,
): void {
  const iovBytes = (iovs: number, n: number): number => {
    try {
      const dv = new DataView(memory().buffer)
      let t = 0
      for (let i = 0; i < n; i++) t += dv.getUint32(iovs + i * 8 + 4, true)
      return t
    } catch {
      return 0 // out-of-bounds iovecs: the real call fails on them
    }
  }
  /** `before` returns an errno to answer without making the call, or nothing to make it. */
  const wrap = (name: string, before: (...a: Array<number | bigint>) => number | undefined) => {
    const f = imports[name]
    if (!f) return
    imports[name] = (...a: Array<number | bigint>) => before(...a) ?? f(...a)
  }
  const account = (fd: number, bytes: number): undefined => {
    meter.account(fd, bytes)
  }
  wrap('fd_write', (fd, iovs, n) => account(Number(fd), iovBytes(Number(iovs), Number(n))))
  wrap('fd_pwrite', (fd, iovs, n) => account(Number(fd), iovBytes(Number(iovs), Number(n))))
  wrap('fd_allocate', (_fd, off, len) => account(-1, Number(off) + Number(len)))
  wrap('fd_filestat_set_size', (_fd, size) => account(-1, Number(size)))
  for (const [name, { lens, created }] of Object.entries(PATH_ARGS)) {
    wrap(name, (...a) => {
      // lengths are u32: a negative i32 is a huge length
      if (lens.some((i) => Number(a[i]) >>> 0 > WASI_PATH_MAX)) return ERRNO_NAMETOOLONG
      if (name === 'path_open' && (Number(a[4]) & O_CREAT) === 0) return undefined
      if (created.length === 0) return undefined
      return account(-1, ENTRY + created.reduce((n, i) => n + (Number(a[i]) >>> 0), 0))
    })
  }
}
