/**
 * Write metering for the WASI host (internal, worker side): every byte the module asks to
 * write, every byte a file grows by, and 4 KiB per entry it creates count against the disk
 * limit; stdout bytes also count against the output limit. The module is stopped with a
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

/**
 * Wrap the WASI imports that write or create: fd_write, fd_pwrite (the iovec sizes),
 * fd_allocate and fd_filestat_set_size (the size asked for), path_open with O_CREAT and
 * the calls that make entries (4 KiB each). Growth past the written bytes (a write at a far
 * offset) is metered by the file system itself (see memfs.ts).
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
  const wrap = (name: string, before: (...a: Array<number | bigint>) => void) => {
    const f = imports[name]
    if (!f) return
    imports[name] = (...a: Array<number | bigint>) => {
      before(...a)
      return f(...a)
    }
  }
  wrap('fd_write', (fd, iovs, n) => meter.account(Number(fd), iovBytes(Number(iovs), Number(n))))
  wrap('fd_pwrite', (fd, iovs, n) => meter.account(Number(fd), iovBytes(Number(iovs), Number(n))))
  wrap('fd_allocate', (_fd, off, len) => meter.account(-1, Number(off) + Number(len)))
  wrap('fd_filestat_set_size', (_fd, size) => meter.account(-1, Number(size)))
  wrap('path_open', (...a) => {
    if ((Number(a[4]) & O_CREAT) !== 0) meter.account(-1, ENTRY)
  })
  for (const name of ['path_create_directory', 'path_symlink', 'path_link', 'path_rename']) {
    wrap(name, () => meter.account(-1, ENTRY))
  }
}
