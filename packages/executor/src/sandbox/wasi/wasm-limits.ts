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

/**
 * Most table entries a module may have, all its tables together. A table lives outside linear
 * memory, in the V8 heap and beside it (dispatch tables), so the memory limit does not bound
 * it, and growing one towards V8's own cap (10 million entries) aborts the whole host process,
 * not just the worker. Toolchains declare one funcref table sized to the functions whose
 * address is taken: a few thousand entries for large programs.
 */
export const WASM_TABLE_ENTRIES_MAX = 10_000
/** Most tables a module may define (toolchains emit one; multi-table needs a few). */
export const WASM_TABLES_MAX = 16

export interface ClampResult {
  /** The module with every defined memory's and table's maximum set to at most its cap. */
  readonly bytes: Uint8Array
  readonly capPages: number
}

/**
 * Rewrite a module so the one memory it defines declares `maximum ≤ capPages` and its tables
 * together at most {@link WASM_TABLE_ENTRIES_MAX} entries; `memory.grow` and `table.grow`
 * past a cap then fail inside the module (they return -1). Only the table and memory sections
 * change; everything else is copied byte for byte. A larger `minimum` is refused up front, so
 * are more than {@link WASM_TABLES_MAX} tables and tables other than plain funcref/externref,
 * and GC types (structs, arrays), whose objects no limit here would bound.
 * Imported memories and tables are refused by {@link compileWasiModule}.
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
    if (id === 1) checkTypes(code, bodyStart, end)
    if (id === 4) parts.push(section(4, clampTables(code, bodyStart, end)))
    else if (id === 5) parts.push(section(5, clampMemories(code, bodyStart, end, memoryLimitBytes)))
    else parts.push(code.subarray(pos, end))
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
 * Refuses a type section with anything but function types. Structs and arrays (wasm GC, on in
 * Node 24) are allocated in the worker's V8 heap, outside linear memory and its cap, and V8
 * aborts the whole process, not the worker, when they fill that heap; without such a type no
 * instruction can allocate one. Recursion groups and subtypes are GC's too.
 */
function checkTypes(code: Uint8Array, start: number, end: number): void {
  let [count, p] = readU32(code, start)
  /** Skips one value type: one byte, or 0x63/0x64 (ref null? ht) and a LEB128 heap type. */
  const valType = () => {
    if (p >= end) bad('truncated type section')
    const t = code[p++]!
    if (t === 0x63 || t === 0x64) {
      while (p < end && (code[p]! & 0x80) !== 0) p++
      p++
    }
  }
  while (count-- > 0) {
    if (p >= end) bad('truncated type section')
    const form = code[p++]!
    if (form !== 0x60) bad('GC types are not supported', { form })
    for (let v = 0; v < 2; v++) {
      let n: number
      ;[n, p] = readU32(code, p)
      while (n-- > 0) valType()
    }
  }
  if (p !== end) bad('trailing bytes in type section')
}

function section(id: number, body: number[]): Uint8Array {
  return Uint8Array.of(id, ...writeU32(body.length), ...body)
}

function clampMemories(code: Uint8Array, start: number, end: number, limit: number): number[] {
  const capPages = Math.floor(limit / PAGE)
  const body: number[] = []
  let [count, p] = readU32(code, start)
  // Each memory would get the whole limit (multi-memory is on in Node 24): N memories, N times
  // the limit. A WASI command has one, exported as `memory`.
  if (count > 1) bad('more than one memory', { memories: count })
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
        details: { minimumBytes: min * PAGE, memoryLimitBytes: limit },
      })
    }
    const clamped = Math.min(max ?? capPages, capPages)
    body.push(0x01, ...writeU32(min), ...writeU32(clamped))
  }
  if (p !== end) bad('trailing bytes in memory section')
  return body
}

/**
 * The table section, each table's maximum lowered so that all of them together stay within
 * WASM_TABLE_ENTRIES_MAX: each keeps its minimum and gets an equal share of what the minimums
 * leave (or its own smaller maximum).
 */
function clampTables(code: Uint8Array, start: number, end: number): number[] {
  const [count, first] = readU32(code, start)
  if (count > WASM_TABLES_MAX) {
    throw new SandboxMemoryError('Module defines more tables than allowed', {
      details: { tables: count, tablesMax: WASM_TABLES_MAX },
      hint: `A module may define at most ${WASM_TABLES_MAX} tables.`,
    })
  }
  const tables: { type: number; min: number; max: number | undefined }[] = []
  let p = first
  for (let i = 0; i < count; i++) {
    if (p + 1 >= end) bad('truncated table section')
    // 0x70 funcref, 0x6f externref; typed references and initializer expressions (0x40) are
    // not something a WASI toolchain emits
    const type = code[p++]!
    if (type !== 0x70 && type !== 0x6f) bad('table type not supported', { type })
    const flags = code[p++]!
    if (flags !== 0 && flags !== 1) bad('shared or 64-bit tables are not supported', { flags })
    let min: number
    ;[min, p] = readU32(code, p)
    let max: number | undefined
    if (flags === 1) [max, p] = readU32(code, p)
    tables.push({ type, min, max })
  }
  if (p !== end) bad('trailing bytes in table section')
  const minimum = tables.reduce((n, t) => n + t.min, 0)
  if (minimum > WASM_TABLE_ENTRIES_MAX) {
    throw new SandboxMemoryError('Module needs larger tables than allowed', {
      details: { tableEntries: minimum, tableEntriesMax: WASM_TABLE_ENTRIES_MAX },
      hint: `A module's tables may hold at most ${WASM_TABLE_ENTRIES_MAX} entries together.`,
    })
  }
  const share = Math.floor((WASM_TABLE_ENTRIES_MAX - minimum) / Math.max(count, 1))
  const body = writeU32(count)
  for (const t of tables) {
    const clamped = Math.min(t.max ?? Number.POSITIVE_INFINITY, t.min + share)
    body.push(t.type, 0x01, ...writeU32(t.min), ...writeU32(clamped))
  }
  return body
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
