import { SandboxMemoryError, SandboxRuntimeUnsupportedError } from '../../errors.ts'

const PAGE = 65536
const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

function bad(reason: string, details: Record<string, unknown> = {}): never {
  throw new SandboxRuntimeUnsupportedError('Code is not a supported WebAssembly module', {
    details: { reason, ...details },
  })
}

function readU32(b: Uint8Array, pos: number): [value: number, next: number] {
  let result = 0
  let shift = 0
  for (let i = 0; i < 5; i++) {
    if (pos >= b.length) bad('truncated LEB128')
    const byte = b[pos++]!
    result += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) {
      if (result > 0xffffffff) bad('LEB128 out of range')
      return [result, pos]
    }
    shift += 7
  }
  return bad('LEB128 too long')
}

function writeU32(v: number): number[] {
  const out: number[] = []
  do {
    let byte = v & 0x7f
    v = Math.floor(v / 128)
    if (v !== 0) byte |= 0x80
    out.push(byte)
  } while (v !== 0)
  return out
}

export interface ClampResult {
  /** The module with every defined memory's maximum set to at most the cap. */
  readonly bytes: Uint8Array
  readonly capPages: number
}

/**
 * Rewrite a module so each memory it defines declares `maximum ≤ capPages`; `memory.grow`
 * past the cap then fails inside the module. Only the memory section changes; everything
 * else is copied byte for byte. Memories with a larger `minimum` are refused up front.
 */
export function clampWasmMemory(code: Uint8Array, memoryLimitBytes: number): ClampResult {
  const capPages = Math.floor(memoryLimitBytes / PAGE)
  if (capPages < 1) {
    throw new SandboxMemoryError('Memory limit is below one WebAssembly page (64 KiB)', {
      details: { memoryLimitBytes },
    })
  }
  if (code.length < 8 || MAGIC.some((m, i) => code[i] !== m)) bad('bad magic or version')
  const parts: Uint8Array[] = [code.subarray(0, 8)]
  let pos = 8
  while (pos < code.length) {
    const id = code[pos]!
    const [size, bodyStart] = readU32(code, pos + 1)
    const end = bodyStart + size
    if (end > code.length) bad('section runs past the end', { section: id })
    if (id !== 5) {
      parts.push(code.subarray(pos, end))
      pos = end
      continue
    }
    const body: number[] = []
    let [count, p] = readU32(code, bodyStart)
    body.push(...writeU32(count))
    while (count-- > 0) {
      if (p >= end) bad('truncated memory section')
      const flags = code[p++]!
      if (flags !== 0 && flags !== 1) bad('shared or 64-bit memories are not supported', { flags })
      let min: number
      ;[min, p] = readU32(code, p)
      let max: number | undefined
      if (flags === 1) [max, p] = readU32(code, p)
      if (min > capPages) {
        throw new SandboxMemoryError('Module needs more memory than the limit allows', {
          details: { minimumBytes: min * PAGE, memoryLimitBytes },
        })
      }
      const clamped = Math.min(max ?? capPages, capPages)
      body.push(0x01, ...writeU32(min), ...writeU32(clamped))
    }
    if (p !== end) bad('trailing bytes in memory section')
    parts.push(Uint8Array.of(5, ...writeU32(body.length), ...body))
    pos = end
  }
  const total = parts.reduce((n, x) => n + x.length, 0)
  const bytes = new Uint8Array(total)
  let off = 0
  for (const x of parts) {
    bytes.set(x, off)
    off += x.length
  }
  return { bytes, capPages }
}

/**
 * Compile a WASI preview-1 command module and check its shape: imports only
 * `wasi_snapshot_preview1` functions, exports `_start` and `memory`.
 */
export async function compileWasiModule(bytes: Uint8Array): Promise<WebAssembly.Module> {
  let mod: WebAssembly.Module
  try {
    mod = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
  } catch (err) {
    return bad('does not compile', { error: (err as Error).message.slice(0, 200) })
  }
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module !== 'wasi_snapshot_preview1' || imp.kind !== 'function') {
      bad('imports something other than wasi_snapshot_preview1 functions', {
        import: `${imp.module}.${imp.name}`.slice(0, 100),
        kind: imp.kind,
      })
    }
  }
  const exports = WebAssembly.Module.exports(mod)
  if (!exports.some((e) => e.name === '_start' && e.kind === 'function')) bad('no _start export')
  if (!exports.some((e) => e.name === 'memory' && e.kind === 'memory')) bad('no memory export')
  return mod
}
