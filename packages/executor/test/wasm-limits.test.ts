import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import wabtInit from 'wabt'
import {
  clampWasmMemory,
  compileWasiModule,
  WASM_TABLE_ENTRIES_MAX,
  WASM_TABLES_MAX,
} from '../src/sandbox/wasi/wasm-limits.ts'
import { wat } from './helpers.ts'

const wabt = await wabtInit()
const wasm = (text: string): Uint8Array => {
  const m = wabt.parseWat('t.wat', text)
  try {
    return m.toBinary({}).buffer
  } finally {
    m.destroy()
  }
}
/** A WASI-shaped module with these extra definitions (tables, imports). */
const withTables = (defs: string) =>
  wasm(`(module ${defs} (memory (export "memory") 1) (func (export "_start")))`)

const sum = wat('sum-input.wat') // declares (memory 2), no maximum
const PAGE = 65536

async function instantiate(bytes: Uint8Array): Promise<WebAssembly.Memory> {
  const mod = await compileWasiModule(bytes)
  const stubs: Record<string, () => number> = {}
  for (const imp of WebAssembly.Module.imports(mod)) stubs[imp.name] = () => 0
  const inst = await WebAssembly.instantiate(mod, { wasi_snapshot_preview1: stubs })
  return inst.exports.memory as WebAssembly.Memory
}

describe('clampWasmMemory', () => {
  it('gives a memory without a maximum the cap as its maximum', async () => {
    const { bytes, capPages } = clampWasmMemory(sum, 5 * PAGE)
    expect(capPages).toBe(5)
    const mem = await instantiate(bytes)
    expect(mem.buffer.byteLength).toBe(2 * PAGE)
    expect(mem.grow(3)).toBe(2)
    expect(() => mem.grow(1)).toThrow(RangeError)
  })

  it('lowers a larger declared maximum and keeps a smaller one', async () => {
    const big = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 1000)',
    })
    const small = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 3)',
    })
    const memBig = await instantiate(clampWasmMemory(big, 4 * PAGE).bytes)
    expect(() => memBig.grow(3)).toThrow(RangeError)
    expect(memBig.grow(2)).toBe(2)
    const memSmall = await instantiate(clampWasmMemory(small, 100 * PAGE).bytes)
    expect(() => memSmall.grow(2)).toThrow(RangeError)
  })

  it('changes only the memory limits', () => {
    const { bytes } = clampWasmMemory(sum, 1 << 30)
    // limits {flags 0, min 2} became {flags 1, min 2, max 16384 (LEB128 80 80 01)}: +3 bytes
    expect(bytes.length).toBe(sum.length + 3)
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x01, 0x02, 0x80, 0x80, 0x01]))
    expect(at).toBeGreaterThan(8)
    // before: … 05 <size> 01 (count) | after the limits: identical; the size grew by 3
    expect(bytes.subarray(0, at - 2)).toEqual(sum.subarray(0, at - 2))
    expect(bytes[at - 2]).toBe(sum[at - 2]! + 3)
    expect(bytes[at - 1]).toBe(sum[at - 1])
    expect(bytes.subarray(at + 5)).toEqual(sum.subarray(at + 2))
  })

  it('refuses a minimum above the cap (SANDBOX_MEMORY) and a cap below one page', () => {
    expect(() => clampWasmMemory(sum, PAGE)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_MEMORY' }),
    )
    expect(() => clampWasmMemory(sum, 1000)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_MEMORY' }),
    )
  })

  it('refuses shared and 64-bit memories', () => {
    const shared = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 4 shared)',
    })
    expect(() => clampWasmMemory(shared, 16 * PAGE)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_RUNTIME_UNSUPPORTED' }),
    )
  })

  it('caps tables: the maximum of one is the entry cap, several share what their minimums leave', async () => {
    const t1 = new WebAssembly.Instance(
      await compileWasiModule(
        clampWasmMemory(withTables('(table (export "t") 5 funcref)'), PAGE).bytes,
      ),
      {},
    ).exports.t as WebAssembly.Table
    expect(t1.length).toBe(5)
    expect(() => t1.grow(WASM_TABLE_ENTRIES_MAX - 5 + 1)).toThrow(RangeError)
    expect(t1.grow(WASM_TABLE_ENTRIES_MAX - 5)).toBe(5)
    // two tables: 1000 + 0 minimum, 9000 left, 4500 each on top of its minimum
    const two = new WebAssembly.Instance(
      await compileWasiModule(
        clampWasmMemory(
          withTables('(table (export "a") 1000 funcref) (table (export "b") 0 20 externref)'),
          PAGE,
        ).bytes,
      ),
      {},
    ).exports
    const [a, b] = [two.a as WebAssembly.Table, two.b as WebAssembly.Table]
    expect(() => a.grow(4501)).toThrow(RangeError)
    expect(a.grow(4500)).toBe(1000)
    // a smaller declared maximum is kept
    expect(() => b.grow(21)).toThrow(RangeError)
    expect(b.grow(20)).toBe(0)
  })

  it('refuses tables over the caps (SANDBOX_MEMORY) and imported or unusual tables (SANDBOX_RUNTIME_UNSUPPORTED)', async () => {
    const refused = (code: () => unknown) => {
      try {
        code()
      } catch (e) {
        return e as { code: string; details: unknown }
      }
      throw new Error('not refused')
    }
    expect(
      refused(() =>
        clampWasmMemory(withTables(`(table ${WASM_TABLE_ENTRIES_MAX + 1} funcref)`), PAGE),
      ),
    ).toMatchObject({
      code: 'SANDBOX_MEMORY',
      details: { tableEntries: WASM_TABLE_ENTRIES_MAX + 1 },
    })
    // the minimums count together
    expect(
      refused(() => clampWasmMemory(withTables('(table 6000 funcref) (table 6000 funcref)'), PAGE)),
    ).toMatchObject({ code: 'SANDBOX_MEMORY', details: { tableEntries: 12_000 } })
    const many = Array.from({ length: WASM_TABLES_MAX + 1 }, () => '(table 0 funcref)').join(' ')
    expect(refused(() => clampWasmMemory(withTables(many), PAGE))).toMatchObject({
      code: 'SANDBOX_MEMORY',
      details: { tables: WASM_TABLES_MAX + 1 },
    })
    // an imported table (kind 1) or memory is not the module's to size: refused at compile
    for (const imp of [
      '(import "wasi_snapshot_preview1" "t" (table 10 funcref))',
      '(import "env" "t" (table 10000000 funcref))',
    ]) {
      const code = clampWasmMemory(withTables(imp), PAGE).bytes
      await expect(compileWasiModule(code)).rejects.toMatchObject({
        code: 'SANDBOX_RUNTIME_UNSUPPORTED',
        details: { kind: 'table' },
      })
    }
    // 64-bit tables: flags 0x04; patched into a plain module's table section
    const plain = withTables('(table 1 funcref)')
    const at = Buffer.from(plain).indexOf(Buffer.from([0x04, 0x04, 0x01, 0x70, 0x00, 0x01]))
    expect(at).toBeGreaterThan(8)
    const t64 = plain.slice()
    t64[at + 4] = 0x04
    expect(refused(() => clampWasmMemory(t64, PAGE))).toMatchObject({
      code: 'SANDBOX_RUNTIME_UNSUPPORTED',
      details: { reason: 'shared or 64-bit tables are not supported' },
    })
  })

  it('refuses a module defining more than one memory: each would get the whole limit', async () => {
    const two = wasm('(module (memory (export "memory") 1) (memory 1) (func (export "_start")))')
    // the module is valid as it is (multi-memory is on in Node 24)
    expect(WebAssembly.validate(two as Uint8Array<ArrayBuffer>)).toBe(true)
    expect(() => clampWasmMemory(two, 16 * PAGE)).toThrow(
      expect.objectContaining({
        code: 'SANDBOX_RUNTIME_UNSUPPORTED',
        details: expect.objectContaining({ reason: 'more than one memory', memories: 2 }),
      }),
    )
  })

  it('fuzz: any mutation of a valid module is clamped and compiled, or refused with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(sum.length - 1),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        async (i, v, truncate) => {
          const m = truncate ? sum.slice(0, i) : sum.slice()
          if (!truncate) m[i] = v
          try {
            await compileWasiModule(clampWasmMemory(m, 8 * PAGE).bytes)
          } catch (e) {
            expect(['SANDBOX_RUNTIME_UNSUPPORTED', 'SANDBOX_MEMORY']).toContain(
              (e as { code: string }).code,
            )
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
