/**
 * Worker-thread side of the WASI sandbox: instantiate the module against `node:wasi`
 * preview 1 with a single preopen and no environment, run `_start`, zero the linear
 * memory, report. Internal: loaded by `wasi.ts` only.
 */
import { closeSync, openSync } from 'node:fs'
import { WASI } from 'node:wasi'
import { parentPort } from 'node:worker_threads'
import type { WasiWorkerData, WasiWorkerResult } from './wasi-protocol.ts'

// Nothing this thread prints may reach the host's stdio (the emscripten glue logs aborts).
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) console[m] = () => {}
process.stdout.write = () => true
process.stderr.write = () => true

class LimitHit extends Error {
  readonly which: 'output' | 'disk'
  constructor(which: 'output' | 'disk') {
    super(which)
    this.which = which
  }
}

type WasiFn = (...args: Array<number | bigint>) => number

/**
 * Count every byte the module asks to write (fd_write, fd_pwrite, fd_allocate, and the
 * size it sets with fd_filestat_set_size) plus 4 KiB per file, directory or link it
 * creates, and stop it with a trap before passing the output or disk limit — limits hold
 * exactly instead of at the speed of a poll, and the clean-up never meets a huge (sparse)
 * file or a million entries.
 */
function meterWrites(
  imports: Record<string, WasiFn>,
  memory: () => WebAssembly.Memory,
  data: WasiWorkerData,
): void {
  let total = 0
  let out = 0
  const iovBytes = (iovs: number, n: number): number => {
    try {
      const dv = new DataView(memory().buffer)
      let t = 0
      for (let i = 0; i < n; i++) t += dv.getUint32(iovs + i * 8 + 4, true)
      return t
    } catch {
      return 0 // out-of-bounds iovecs: the real call answers EFAULT
    }
  }
  const account = (fd: number, bytes: number) => {
    total += bytes
    if (fd === 1) out += bytes
    if (out > data.outputLimitBytes) throw new LimitHit('output')
    if (total > data.diskLimitBytes) throw new LimitHit('disk')
  }
  const write = imports.fd_write!
  imports.fd_write = (fd, iovs, n, nw) => {
    account(Number(fd), iovBytes(Number(iovs), Number(n)))
    return write(fd, iovs, n, nw)
  }
  const pwrite = imports.fd_pwrite!
  imports.fd_pwrite = (fd, iovs, n, off, nw) => {
    account(Number(fd), iovBytes(Number(iovs), Number(n)))
    return pwrite(fd, iovs, n, off, nw)
  }
  const allocate = imports.fd_allocate!
  imports.fd_allocate = (fd, off, len) => {
    account(-1, Number(off) + Number(len))
    return allocate(fd, off, len)
  }
  const setSize = imports.fd_filestat_set_size!
  imports.fd_filestat_set_size = (fd, size) => {
    account(-1, Number(size))
    return setSize(fd, size)
  }
  const ENTRY = 4096
  const O_CREAT = 1
  const open = imports.path_open!
  imports.path_open = (...a) => {
    if ((Number(a[4]) & O_CREAT) !== 0) account(-1, ENTRY)
    return open(...a)
  }
  for (const name of ['path_create_directory', 'path_symlink', 'path_link', 'path_rename']) {
    const f = imports[name]!
    imports[name] = (...a) => {
      account(-1, ENTRY)
      return f(...a)
    }
  }
}

async function main(data: WasiWorkerData): Promise<void> {
  const port = parentPort!
  const stdin = openSync('/dev/null', 'r')
  const stdout = openSync(data.stdoutPath, 'w', 0o600)
  const stderr = openSync(data.stderrPath, 'w', 0o600)
  let exitCode: number | undefined
  let trap: string | undefined
  let limitHit: 'output' | 'disk' | undefined
  let memoryBytes = 0
  let zeroedBytes = 0
  let programMs = 0
  try {
    const wasi = new WASI({
      version: 'preview1',
      args: [...data.args],
      env: {},
      preopens: { '/': data.rootDir },
      returnOnExit: true,
      stdin,
      stdout,
      stderr,
    })
    const imports = wasi.getImportObject() as { wasi_snapshot_preview1: Record<string, WasiFn> }
    const wasiImports = { ...imports.wasi_snapshot_preview1 }
    let memory: WebAssembly.Memory | undefined
    meterWrites(wasiImports, () => memory!, data)
    const instance = await WebAssembly.instantiate(data.module, {
      wasi_snapshot_preview1: wasiImports,
    } as WebAssembly.Imports)
    memory = instance.exports.memory as WebAssembly.Memory
    port.postMessage({ type: 'started' })
    const t0 = performance.now()
    try {
      exitCode = wasi.start(instance)
    } catch (err) {
      if (err instanceof LimitHit) limitHit = err.which
      else trap = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`
    }
    programMs = performance.now() - t0
    memoryBytes = memory.buffer.byteLength
    new Uint8Array(memory.buffer).fill(0)
    zeroedBytes = memoryBytes
  } finally {
    closeSync(stdin)
    closeSync(stdout)
    closeSync(stderr)
  }
  const result: WasiWorkerResult = { exitCode, trap, limitHit, memoryBytes, programMs, zeroedBytes }
  port.postMessage({ type: 'done', payload: result })
}

parentPort!.once('message', (msg: { type: 'job'; job: WasiWorkerData }) => {
  void main(msg.job)
})
