/**
 * Worker-thread side of the QuickJS sandbox. Runs one program in a fresh QuickJS runtime
 * (WebAssembly), posts the result, zeroes what it held, and waits to be terminated.
 * Internal: loaded by `sandbox.ts` only.
 */

import { closeSync, constants, openSync, readSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import RELEASE_SYNC from '@jitl/quickjs-wasmfile-release-sync'
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
} from 'quickjs-emscripten-core'
import type {
  QuickJsBootData,
  QuickJsWorkerData,
  QuickJsWorkerResult,
  WorkerFailure,
} from './protocol.ts'

// Nothing this thread prints may reach the host's stdio (the emscripten glue logs aborts).
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) console[m] = () => {}
process.stdout.write = () => true
process.stderr.write = () => true

const PRELUDE = `(function (raw) {
  'use strict'
  const toBytes = (x) => {
    if (typeof x === 'string') return x
    if (x instanceof ArrayBuffer) return x
    if (ArrayBuffer.isView(x)) return x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength)
    throw new TypeError('digicap.output takes a string, an ArrayBuffer or a typed array')
  }
  const show = (a) => {
    if (typeof a === 'string') return a
    try { const j = JSON.stringify(a); return j === undefined ? String(a) : j } catch { return String(a) }
  }
  const args = Object.freeze(raw.args())
  const inputSize = raw.inputSize()
  const digicap = Object.freeze({
    input: () => raw.input(),
    inputText: () => raw.inputText(),
    inputSize,
    read: (offset, length) => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new RangeError('digicap.read takes a non-negative integer offset and length')
      }
      return raw.read(offset, length)
    },
    output: (x) => { raw.output(toBytes(x)) },
    log: (...a) => { raw.log(a.map(show).join(' ')) },
    args,
  })
  Object.defineProperty(globalThis, 'digicap', { value: digicap, writable: false, configurable: false, enumerable: false })
})`

const utf8 = new TextEncoder()
/** Largest chunk one `digicap.read` returns. */
const MAX_READ = 16 * 1024 * 1024

/**
 * The job's payload data: in memory, or (ADR 0035) the run's plaintext file through one
 * read-only descriptor; `read` fills `into` from `at` and returns the bytes read.
 */
interface JobInput {
  readonly size: number
  read(into: Uint8Array, at: number): number
  close(): void
  /** Zero what this side holds; returns the bytes zeroed. */
  wipe(): number
}

function jobInput(data: QuickJsWorkerData): JobInput {
  const f = data.inputFile
  if (!f) {
    const bytes = data.input
    return {
      size: bytes.byteLength,
      read(into, at) {
        const part = bytes.subarray(Math.min(at, bytes.byteLength), at + into.byteLength)
        into.set(part)
        return part.byteLength
      },
      close() {},
      wipe() {
        bytes.fill(0)
        return bytes.byteLength
      },
    }
  }
  const fd = openSync(f.path, constants.O_RDONLY | constants.O_NOFOLLOW)
  return {
    size: f.size,
    read(into, at) {
      const n = Math.max(0, Math.min(into.byteLength, f.size - at))
      let done = 0
      while (done < n) {
        const got = readSync(fd, into, done, n - done, f.offset + at + done)
        if (got === 0) break
        done += got
      }
      return done
    },
    close() {
      closeSync(fd)
    },
    wipe() {
      return 0
    },
  }
}

// Boot before any job arrives: the variant; the instance is made per job (see memoryFor).
const boot = workerData as QuickJsBootData
// The variant package is CommonJS-typed; its default export is the sync variant object.
const baseVariant = ((RELEASE_SYNC as { default?: unknown }).default ?? RELEASE_SYNC) as Parameters<
  typeof newVariant
>[0]

const PAGE = 65536
/** Pages the emscripten build starts with (its stack, static data and first heap). */
const BASE_PAGES = 256
/** The most pages the emscripten build's memory import accepts (2 GiB). */
const MODULE_MAX_PAGES = 32768

/**
 * The linear memory QuickJS runs in, capped at its base plus the job's memory limit.
 * QuickJS's own `setMemoryLimit` does not count ArrayBuffer storage, so a program piling
 * up typed arrays would otherwise grow this memory towards 4 GiB (slowly, and between
 * interrupt checks); with a maximum, the allocation fails and QuickJS throws
 * "out of memory", which the run reports as SANDBOX_MEMORY.
 */
function memoryFor(memoryLimitBytes: number): WebAssembly.Memory {
  // the module's own declared maximum: a larger memory does not link (checkJob refuses such
  // a limit first, QUICKJS_MAX_MEMORY_LIMIT_BYTES)
  const maximum = Math.min(MODULE_MAX_PAGES, BASE_PAGES + Math.ceil(memoryLimitBytes / PAGE))
  return new WebAssembly.Memory({ initial: BASE_PAGES, maximum })
}

async function main(data: QuickJsWorkerData): Promise<void> {
  const port = parentPort!
  const input = jobInput(data)
  const logs: string[] = []
  let dropped = 0
  // One growing buffer (doubling, up to the limit), not a chunk list: a program writing
  // millions of 1-byte outputs must not turn into millions of host objects.
  let outBuf = new Uint8Array(0)
  let outputBytes = 0
  let outputExceeded = false
  let deadline = Number.POSITIVE_INFINITY
  let timedOut = false
  let zeroedBuffers = 0
  let zeroedBytes = 0

  const mod = await newQuickJSWASMModuleFromVariant(
    newVariant(baseVariant, {
      wasmModule: boot.wasmModule,
      wasmMemory: memoryFor(data.memoryLimitBytes),
    }) as Parameters<typeof newQuickJSWASMModuleFromVariant>[0],
  )
  const rt = mod.newRuntime()
  rt.setMemoryLimit(data.memoryLimitBytes)
  rt.setMaxStackSize(data.stackLimitBytes)
  rt.setInterruptHandler(() => {
    if (outputExceeded) return true
    if (Date.now() > deadline) {
      timedOut = true
      return true
    }
    return false
  })
  const vm = rt.newContext()

  const pushLog = (line: string) => {
    if (logs.length >= data.maxLogLines) {
      dropped++
      return
    }
    logs.push(
      line.length > data.maxLogLineLength ? `${line.slice(0, data.maxLogLineLength)}…` : line,
    )
  }
  const addOutput = (bytes: Uint8Array) => {
    if (outputExceeded) throw new RangeError('digicap.output: output limit exceeded')
    if (outputBytes + bytes.byteLength > data.outputLimitBytes) {
      outputExceeded = true
      port.postMessage({ type: 'stop', payload: outputFailure(data.outputLimitBytes) })
      // Also stop the program now; the interrupt handler keeps it stopped if it catches this.
      throw new RangeError('digicap.output: output limit exceeded')
    }
    if (outputBytes + bytes.byteLength > outBuf.byteLength) {
      const size = Math.min(
        data.outputLimitBytes,
        Math.max(4096, outBuf.byteLength * 2, outputBytes + bytes.byteLength),
      )
      const next = new Uint8Array(size)
      next.set(outBuf.subarray(0, outputBytes))
      outBuf.fill(0)
      outBuf = next
    }
    outBuf.set(bytes, outputBytes)
    outputBytes += bytes.byteLength
    bytes.fill(0)
  }

  let failure: WorkerFailure | undefined
  let programMs = 0
  try {
    const raw = vm.newObject()
    const fn = (name: string, impl: (...a: QuickJSHandle[]) => QuickJSHandle | undefined) => {
      const h = vm.newFunction(name, impl)
      vm.setProp(raw, name, h)
      h.dispose()
    }
    // The whole payload, bounded by the memory limit (a larger one is read by chunks).
    const whole = (): Uint8Array => {
      if (input.size > data.memoryLimitBytes) {
        throw new RangeError(
          `digicap.input: the data (${input.size} bytes) is larger than the memory limit; read it with digicap.read(offset, length)`,
        )
      }
      const bytes = new Uint8Array(input.size)
      input.read(bytes, 0)
      return bytes
    }
    fn('inputSize', () => vm.newNumber(input.size))
    fn('input', () => {
      const bytes = whole()
      const h = vm.newArrayBuffer(bytes.buffer)
      bytes.fill(0)
      return h
    })
    fn('inputText', () => {
      const bytes = whole()
      const h = vm.newString(new TextDecoder().decode(bytes))
      bytes.fill(0)
      return h
    })
    fn('read', (offset, length) => {
      const at = offset === undefined ? 0 : vm.getNumber(offset)
      const want = length === undefined ? 0 : vm.getNumber(length)
      const bytes = new Uint8Array(Math.max(0, Math.min(want, MAX_READ, input.size - at)))
      const got = input.read(bytes, at)
      const chunk = got === bytes.byteLength ? bytes : bytes.slice(0, got)
      const h = vm.newArrayBuffer(chunk.buffer)
      bytes.fill(0)
      chunk.fill(0)
      return h
    })
    fn('output', (h) => {
      if (h === undefined) return undefined
      if (vm.typeof(h) === 'string') {
        addOutput(utf8.encode(vm.getString(h)))
      } else {
        const lt = vm.getArrayBuffer(h)
        addOutput(lt.value.slice())
        lt.dispose()
      }
      return undefined
    })
    fn('log', (h) => {
      pushLog(h === undefined ? '' : vm.getString(h))
      return undefined
    })
    fn('args', () => {
      const arr = vm.newArray()
      data.args.forEach((a, i) => {
        const s = vm.newString(a)
        vm.setProp(arr, i, s)
        s.dispose()
      })
      return arr
    })
    const prelude = vm.unwrapResult(vm.evalCode(PRELUDE, 'digicap-prelude.js', { type: 'global' }))
    vm.unwrapResult(vm.callFunction(prelude, vm.undefined, raw)).dispose()
    prelude.dispose()
    raw.dispose()

    port.postMessage({ type: 'started' })
    const t0 = performance.now()
    deadline = Date.now() + data.timeLimitMs
    const res = vm.evalCode(data.source, data.entry, { type: 'global', strict: true })
    if (res.error) {
      failure = classify(vm, res.error, { timedOut, outputExceeded })
      res.error.dispose()
    } else {
      // Settle promise jobs the program queued (async functions, .then chains).
      for (;;) {
        const jobs = rt.executePendingJobs(-1)
        if (jobs.error) {
          failure = classify(vm, jobs.error, { timedOut, outputExceeded })
          jobs.error.dispose()
          break
        }
        if (jobs.value === 0) break
      }
      // A script whose completion value is a promise is awaited: a rejection fails the run.
      if (!failure) {
        const state = vm.getPromiseState(res.value)
        if (state.type === 'rejected') {
          failure = classify(vm, state.error, { timedOut, outputExceeded })
          state.error.dispose()
        } else if (state.type === 'pending') {
          failure = {
            code: 'SANDBOX_CRASH',
            message: 'Program ended with a promise that never settles',
          }
        } else if (state.notAPromise !== true) {
          state.value.dispose()
        }
      }
      res.value.dispose()
    }
    programMs = performance.now() - t0
  } catch (err) {
    // A host-side exception from the engine (e.g. an abort when memory ran out mid-call).
    const msg = String((err as Error)?.message ?? err)
    failure = /memory|alloc/i.test(msg)
      ? { code: 'SANDBOX_MEMORY', message: 'Program ran out of memory', details: { limit: 'heap' } }
      : { code: 'SANDBOX_CRASH', message: 'QuickJS engine failed', programMessage: msg }
  }
  // The interrupt may have fired inside a promise job whose rejection nothing observes:
  // whatever the program did after that, a run that hit its deadline is a timeout.
  if (timedOut) failure = timeoutFailure()
  if (outputExceeded) failure = outputFailure(data.outputLimitBytes)

  let output = new Uint8Array(0)
  if (!failure) output = outBuf.slice(0, outputBytes)
  outBuf.fill(0)
  zeroedBuffers++
  zeroedBytes += outBuf.byteLength
  try {
    vm.dispose()
    rt.dispose()
  } catch {
    // The worker is terminated next; a leak check failing after an interrupt does not matter.
  }
  // The program's heap held the payload: zero the whole linear memory, then our copy.
  const mem = new Uint8Array(mod.getWasmMemory().buffer)
  mem.fill(0)
  zeroedBuffers += 2
  zeroedBytes += mem.byteLength + input.wipe()
  input.close()

  const result: QuickJsWorkerResult = {
    ...(failure ? { ok: false as const, failure } : { ok: true as const, output }),
    logs,
    droppedLogLines: dropped,
    programMs,
    zeroed: { buffers: zeroedBuffers, bytes: zeroedBytes },
  }
  port.postMessage(
    { type: 'done', payload: result },
    result.ok ? [result.output.buffer as ArrayBuffer] : [],
  )
}

function outputFailure(limit: number): WorkerFailure {
  return {
    code: 'SANDBOX_OUTPUT_LIMIT',
    message: 'Program output exceeded the limit',
    details: { outputLimitBytes: limit },
  }
}

function timeoutFailure(): WorkerFailure {
  return {
    code: 'SANDBOX_TIMEOUT',
    message: 'Program exceeded its time limit',
    details: { enforcedBy: 'interrupt' },
  }
}

function classify(
  vm: QuickJSContext,
  errHandle: QuickJSHandle,
  state: { timedOut: boolean; outputExceeded: boolean },
): WorkerFailure {
  if (state.outputExceeded) return { code: 'SANDBOX_OUTPUT_LIMIT', message: '', details: {} }
  let name = ''
  let message = ''
  try {
    const d = vm.dump(errHandle) as unknown
    if (d && typeof d === 'object') {
      name = String((d as { name?: unknown }).name ?? '')
      message = String((d as { message?: unknown }).message ?? '')
    } else {
      message = String(d)
    }
  } catch {
    message = 'unreadable error'
  }
  if (state.timedOut || (name === 'InternalError' && message === 'interrupted')) {
    return timeoutFailure()
  }
  // Out of memory, the error itself cannot be read back: it dumps as null or as '' (which one
  // depends on where the allocation failed).
  if (/out of memory/i.test(message) || (name === '' && (message === 'null' || message === ''))) {
    return {
      code: 'SANDBOX_MEMORY',
      message: 'Program ran out of memory',
      details: { limit: 'heap' },
    }
  }
  // QuickJS caps a string at 2^30 - 1 characters; concatenation (a rope) reaches it
  // before the heap limit. It is a memory bound like the heap's.
  if (name === 'InternalError' && /string too long/i.test(message)) {
    return {
      code: 'SANDBOX_MEMORY',
      message: 'Program built a string longer than allowed',
      details: { limit: 'string-length' },
    }
  }
  if (name === 'RangeError' && /stack overflow/i.test(message)) {
    return {
      code: 'SANDBOX_MEMORY',
      message: 'Program overflowed its stack',
      details: { limit: 'stack' },
    }
  }
  if (name === 'InternalError' && /stack overflow/i.test(message)) {
    return {
      code: 'SANDBOX_MEMORY',
      message: 'Program overflowed its stack',
      details: { limit: 'stack' },
    }
  }
  return {
    code: 'SANDBOX_CRASH',
    message: 'Program threw an error',
    programMessage: name ? `${name}: ${message}` : message,
  }
}

parentPort!.once('message', (msg: { type: 'job'; job: QuickJsWorkerData }) => {
  void main(msg.job)
})
