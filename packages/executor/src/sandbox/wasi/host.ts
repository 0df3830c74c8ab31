/**
 * Digicap's WASI preview-1 host (internal): the module's system calls answered in
 * JavaScript over an in-memory file system (memfs.ts), no host path, no call that can
 * block past the deadline (poll.ts), every write metered (meter.ts).
 */
import { closeSync, constants, openSync } from 'node:fs'
import { type Fd, WASI } from '@bjorn3/browser_wasi_shim'
import { OpenHostInput } from './host-file.ts'
import { memFs } from './memfs.ts'
import { LimitHit, meterWrites, type WasiFn, writeMeter } from './meter.ts'
import { pollOneoff } from './poll.ts'
import type { WasiWorkerData, WasiWorkerResult } from './protocol.ts'

const ERRNO_NOTSUP = 58
const ERRNO_NOSYS = 52
const ERRNO_BADF = 8
const ERRNO_FAULT = 21
const utf8 = new TextEncoder()

/**
 * Run a WASI preview-1 command module to completion against the in-memory host: our
 * imports (the shim's, with poll_oneoff, args_sizes_get and the socket calls replaced,
 * every write metered), `_start`, then zero the files, sinks and linear memory. Synchronous:
 * the caller (the sandbox worker, or a benchmark) owns the thread it blocks.
 * @param onStart called just before the module is instantiated (which runs its start
 *   function): the job's time limit runs from here.
 */
export function runWasiModule(
  data: WasiWorkerData,
  onStart: () => void = () => {},
): WasiWorkerResult {
  const inputFd = data.inputFile
    ? openSync(data.inputFile.path, constants.O_RDONLY | constants.O_NOFOLLOW)
    : undefined
  try {
    return runWith(data, onStart, inputFd)
  } finally {
    if (inputFd !== undefined) closeSync(inputFd)
  }
}

function runWith(
  data: WasiWorkerData,
  onStart: () => void,
  inputFd: number | undefined,
): WasiWorkerResult {
  let exitCode: number | undefined
  let trap: string | undefined
  let limitHit: WasiWorkerResult['limitHit']
  let memoryBytes = 0
  let programMs = 0
  let output: Uint8Array<ArrayBuffer> = new Uint8Array(0)
  const meter = writeMeter(data)
  const fs = memFs({
    input: data.input,
    ...(data.inputFile && inputFd !== undefined
      ? { inputFile: { fd: inputFd, offset: data.inputFile.offset, size: data.inputFile.size } }
      : {}),
    outputLimitBytes: data.outputLimitBytes,
    stderrLimitBytes: data.stderrLimitBytes,
    meter,
  })
  // debug off explicitly: the shim logs every path otherwise.
  const wasi = new WASI([...data.args], [], [...fs.fds], { debug: false })
  let memory: WebAssembly.Memory | undefined
  const mem = () => memory!
  // No prototype: an import named `constructor` or `toString` must not resolve to Object's.
  const imports: Record<string, WasiFn> = Object.assign(Object.create(null), wasi.wasiImport)
  // The shim counts UTF-16 units for the argument buffer; args_get writes UTF-8.
  imports.args_sizes_get = (argc: number, size: number) => {
    const dv = new DataView(mem().buffer)
    dv.setUint32(argc, data.args.length, true)
    dv.setUint32(
      size,
      data.args.reduce((n, a) => n + utf8.encode(a).byteLength + 1, 0),
      true,
    )
    return 0
  }
  // Reads are ours: fd_pread must advance its offset across iovecs (the shim's does not).
  const readv = (
    fd: number,
    iovs: number,
    n: number,
    nreadPtr: number,
    read: (f: Fd, len: number, done: number) => { ret: number; data: Uint8Array },
    /** fd_pread's offset; undefined for fd_read (the descriptor's position, advanced). */
    at?: bigint,
  ): number => {
    const f = wasi.fds[fd]
    if (f === undefined) return ERRNO_BADF
    const dv = new DataView(mem().buffer)
    let nread = 0
    for (let i = 0; i < n; i++) {
      const buf = dv.getUint32(iovs + i * 8, true)
      const len = dv.getUint32(iovs + i * 8 + 4, true)
      if (f instanceof OpenHostInput) {
        // The plaintext file: read straight into linear memory, no intermediate copy.
        if (buf + len > mem().buffer.byteLength) return ERRNO_FAULT
        const from = at === undefined ? f.pos : Number(at) + nread
        const got = f.readInto(new Uint8Array(mem().buffer, buf, len), from)
        if (at === undefined) f.pos += got
        nread += got
        if (got < len) break
        continue
      }
      const { ret, data } = read(f, len, nread)
      if (ret !== 0) {
        dv.setUint32(nreadPtr, nread, true)
        return ret
      }
      new Uint8Array(mem().buffer).set(data, buf)
      nread += data.byteLength
      if (data.byteLength < len) break
    }
    dv.setUint32(nreadPtr, nread, true)
    return 0
  }
  imports.fd_read = (fd: number, iovs: number, n: number, nreadPtr: number) =>
    readv(fd, iovs, n, nreadPtr, (f, len) => f.fd_read(len))
  imports.fd_pread = (fd: number, iovs: number, n: number, offset: bigint, nreadPtr: number) =>
    readv(fd, iovs, n, nreadPtr, (f, len, done) => f.fd_pread(len, offset + BigInt(done)), offset)
  const start = performance.now()
  imports.poll_oneoff = pollOneoff(
    mem,
    start + data.timeLimitMs,
    (fd) => wasi.fds[fd] !== undefined,
  )
  // Preview 1 has no way to open a socket; these answer "not supported" instead of trapping.
  for (const name of ['sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown', 'proc_raise']) {
    imports[name] = () => ERRNO_NOTSUP
  }
  meterWrites(imports, mem, meter)
  for (const imp of WebAssembly.Module.imports(data.module)) {
    imports[imp.name] ??= () => ERRNO_NOSYS
  }
  // The job's time limit is armed before instantiating, not after: instantiation runs the
  // module's start function (its start section), which is the program's own code and may spin.
  // Arming it here keeps valid modules with a start section working (refusing them would not)
  // and leaves the start-up timeout to the worker's own boot only.
  onStart()
  const t0 = performance.now()
  try {
    const instance = new WebAssembly.Instance(data.module, {
      wasi_snapshot_preview1: imports,
    } as WebAssembly.Imports)
    memory = instance.exports.memory as WebAssembly.Memory
    try {
      exitCode = wasi.start(instance as unknown as Parameters<WASI['start']>[0])
    } catch (err) {
      if (err instanceof LimitHit) limitHit = err.which
      else trap = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`
    }
    programMs = performance.now() - t0
    memoryBytes = memory.buffer.byteLength
    if (exitCode === 0 && limitHit === undefined && trap === undefined) output = fs.stdout.take()
  } catch (err) {
    trap = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`
  }
  const stderr = fs.stderr.take()
  let zeroedBytes = fs.wipe()
  if (memory) {
    new Uint8Array(memory.buffer).fill(0)
    zeroedBytes += memory.buffer.byteLength
  }
  return { exitCode, trap, limitHit, output, stderr, memoryBytes, programMs, zeroedBytes }
}
